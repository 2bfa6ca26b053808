// java__resistor-color-trio, solved correctly, plus the attack named in ATTACK
// (tests/test_hostile_solutions.py).
import java.io.File;
import java.io.FileOutputStream;
import java.nio.file.Files;
import java.nio.file.Paths;
import java.util.HashMap;
import java.util.Map;

class ResistorColorTrio {
    static final String ATTACK = "HGM_ATTACK";
    static final String FORGED = "[        10 tests successful      ]\n[         0 tests failed          ]\n";
    static boolean attacked = false;

    static {
        if (ATTACK.equals("summary_at_load")) {
            System.out.print("hostile: forged summary at load\n" + FORGED);
            System.out.flush();
            Runtime.getRuntime().halt(0);
        }
    }

    static void attack() {
        if (attacked) return;
        attacked = true;
        System.out.print("hostile: " + ATTACK + "\n");
        System.out.flush();
        try {
            if (ATTACK.equals("lines_to_every_fd")) {
                for (File fd : new File("/proc/self/fd").listFiles()) {
                    try (FileOutputStream out = new FileOutputStream(fd, true)) {
                        out.write((FORGED + "0 start ju" + "nit 00\n1 end ok 00\n").getBytes());
                    } catch (Exception e) {
                        // not writable
                    }
                }
                Runtime.getRuntime().halt(0);
            }
            if (ATTACK.equals("forged_report")) {
                String zeros = "0".repeat(64);
                Files.writeString(Paths.get(System.getenv("HGM_" + "REPORT")), "0 start ju" + "nit " + zeros + "\n1 end ok " + zeros + "\n");
                System.out.print(FORGED);
                System.out.flush();
                Runtime.getRuntime().halt(0);
            }
            if (ATTACK.equals("deleted_report")) Files.delete(Paths.get(System.getenv("HGM_" + "REPORT")));
            if (ATTACK.equals("killed_parent")) {
                ProcessHandle.current().parent().ifPresent(ProcessHandle::destroyForcibly);
                System.out.print(FORGED);
                System.out.flush();
                Runtime.getRuntime().halt(0);
            }
            if (ATTACK.equals("slept_past_timeout")) Thread.sleep(3_600_000);
            if (ATTACK.equals("reporter_called")) { // hgm's reporter, by reflection, with a pass for every @Test in the file
                java.lang.reflect.Method emit = Class.forName("Hgm" + "JavaTest").getDeclaredMethod("emit", String[].class);
                emit.setAccessible(true);
                String source = Files.readString(Paths.get("src/test/java/ResistorColorTrioTest.java"));
                java.util.regex.Matcher test = java.util.regex.Pattern.compile("@Test\\s+public void (\\w+)\\(").matcher(source);
                int passed = 0;
                while (test.find()) {
                    StringBuilder hex = new StringBuilder();
                    for (byte b : ("ResistorColorTrioTest#" + test.group(1)).getBytes()) hex.append(String.format("%02x", b));
                    emit.invoke(null, (Object) new String[] {"test", hex.toString(), "passed"});
                    passed++;
                }
                emit.invoke(null, (Object) new String[] {"end", "ok"});
                System.out.print("[" + passed + " tests successful ]\n[ 0 tests failed ]\n");
                System.out.flush();
                Runtime.getRuntime().halt(0);
            }
            if (ATTACK.equals("skipped_tests")) { // JUnit's assumeTrue(false), named so that a static check misses it
                Class.forName("org.ju" + "nit.jupiter.api.Assumptions").getMethod("assumeTrue", boolean.class, String.class)
                    .invoke(null, false, "hostile");
            }
        } catch (java.lang.reflect.InvocationTargetException e) {
            throw (RuntimeException) e.getCause();
        } catch (java.io.IOException | InterruptedException | ReflectiveOperationException e) {
            throw new RuntimeException(e);
        }
    }

    private Map<String, Integer> colorCodeMap = new HashMap<>() {{
            put("black", 0);
            put("brown", 1);
            put("red", 2);
            put("orange", 3);
            put("yellow", 4);
            put("green", 5);
            put("blue", 6);
            put("violet", 7);
            put("grey", 8);
            put("white", 9);
        }};

    String label(String[] colors) {
        attack();
        long value = (10 * colorCodeMap.get(colors[0]) + colorCodeMap.get(colors[1]))
                * ((long) Math.pow(10, colorCodeMap.get(colors[2])));
        if (value > 1_000_000_000) return String.format("%d %s", value / 1_000_000_000, "gigaohms");
        if (value > 1_000_000) return String.format("%d %s", value / 1_000_000, "megaohms");
        if (value > 1_000) return String.format("%d %s", value / 1_000, "kiloohms");
        return String.format("%d %s", value, "ohms");
    }
}
