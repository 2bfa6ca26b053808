// Compile an exercise's main and test sources and run JUnit, all in one JVM (one start, one JIT
// warm-up instead of three). Trusted harness code: compiled once while preparing the Java deps.
// Usage (in the exercise dir): java -cp RUNNER_DIR:LIBS HgmJavaTest LIBS [ConsoleLauncher args...]
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.stream.Collectors;
import java.util.stream.Stream;
import javax.tools.JavaCompiler;
import javax.tools.ToolProvider;

public class HgmJavaTest {
    static List<String> sources(String dir) throws IOException {
        Path root = Paths.get(dir);
        if (!Files.isDirectory(root)) return new ArrayList<>();
        try (Stream<Path> walk = Files.walk(root)) {
            return walk.filter(p -> p.toString().endsWith(".java")).map(Path::toString).sorted().collect(Collectors.toList());
        }
    }

    static void compile(JavaCompiler javac, String src, String out, String classpath) throws IOException {
        List<String> args = new ArrayList<>(Arrays.asList("-encoding", "UTF-8", "-nowarn", "-d", out, "-cp", classpath));
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
        String libs = argv[0];
        JavaCompiler javac = ToolProvider.getSystemJavaCompiler();
        compile(javac, "src/main/java", ".build/main", libs);
        compile(javac, "src/test/java", ".build/test", ".build/main:" + libs);
        String[] launcher = Arrays.copyOfRange(argv, 1, argv.length);
        org.junit.platform.console.ConsoleLauncher.main(launcher);
    }
}
