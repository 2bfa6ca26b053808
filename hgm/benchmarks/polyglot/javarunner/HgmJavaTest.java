// Compile an exercise's main and test sources and run JUnit, all in one JVM (one start, one JIT
// warm-up instead of three), reporting per-test results, signed, to the harness's report file
// (see ../report.py) through HgmListener. Trusted harness code: compiled once while preparing
// the Java deps. The run's key is read from stdin first, before any of the solution is compiled
// or loaded.
// Usage (in the exercise dir): java -cp RUNNER_JAR:LIBS HgmJavaTest LIBS [ConsoleLauncher args...]
import java.io.FileOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.PrintWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.stream.Collectors;
import java.util.stream.Stream;
import javax.crypto.Mac;
import javax.crypto.spec.SecretKeySpec;
import javax.tools.JavaCompiler;
import javax.tools.ToolProvider;

public class HgmJavaTest {
    private static Mac mac;
    private static FileOutputStream report;
    private static long seq = 0;

    static String readKey(InputStream in) throws IOException {
        StringBuilder key = new StringBuilder();
        int ch;
        while ((ch = in.read()) != -1 && ch != '\n') key.append((char) ch);
        return key.toString().trim();
    }

    static void openChannel() throws Exception {
        String key = readKey(System.in);
        String path = System.getenv("HGM_REPORT");
        if (key.isEmpty() || path == null || path.isEmpty()) return;
        mac = Mac.getInstance("HmacSHA256");
        mac.init(new SecretKeySpec(key.getBytes(StandardCharsets.US_ASCII), "HmacSHA256"));
        report = new FileOutputStream(path, true);
    }

    static synchronized void emit(String... fields) {
        if (report == null) return;
        String body = seq + " " + String.join(" ", fields);
        StringBuilder tag = new StringBuilder();
        for (byte b : mac.doFinal(body.getBytes(StandardCharsets.UTF_8))) tag.append(String.format("%02x", b));
        try {
            report.write((body + " " + tag + "\n").getBytes(StandardCharsets.UTF_8));
            report.flush();
        } catch (IOException e) {
            return;
        }
        seq++;
    }

    static String hex(String text) {
        StringBuilder out = new StringBuilder();
        for (byte b : text.getBytes(StandardCharsets.UTF_8)) out.append(String.format("%02x", b));
        return out.toString();
    }

    static List<String> sources(String dir) throws IOException {
        Path root = Paths.get(dir);
        if (!Files.isDirectory(root)) return new ArrayList<>();
        try (Stream<Path> walk = Files.walk(root)) {
            return walk.filter(p -> p.toString().endsWith(".java")).map(Path::toString).sorted().collect(Collectors.toList());
        }
    }

    static void compile(JavaCompiler javac, String src, String out, String classpath) throws IOException {
        // -proc:none: no annotation processor (code found on the class path) runs while compiling
        List<String> args = new ArrayList<>(Arrays.asList("-encoding", "UTF-8", "-nowarn", "-proc:none", "-d", out, "-cp", classpath));
        List<String> files = sources(src);
        if (files.isEmpty()) return;
        args.addAll(files);
        Files.createDirectories(Paths.get(out));
        int rc = javac.run(null, System.out, System.err, args.toArray(new String[0]));
        if (rc != 0) {
            System.out.println("compilation of " + src + " failed");
            System.exit(1);
        }
    }

    public static void main(String[] argv) throws Exception {
        openChannel();
        emit("start", "junit");
        String libs = argv[0];
        JavaCompiler javac = ToolProvider.getSystemJavaCompiler();
        compile(javac, "src/main/java", ".build/main", libs);
        compile(javac, "src/test/java", ".build/test", ".build/main:" + libs);
        String[] launcher = Arrays.copyOfRange(argv, 1, argv.length);
        PrintWriter out = new PrintWriter(System.out, true);
        PrintWriter err = new PrintWriter(System.err, true);
        int code = org.junit.platform.console.ConsoleLauncher.run(out, err, launcher).getExitCode();
        out.flush();
        err.flush();
        emit("end", code == 0 && HgmListener.failures() == 0 ? "ok" : "fail");
        System.exit(code);
    }
}
