// JUnit Platform listener (registered through META-INF/services in hgm-runner.jar): one signed
// record per finished test, through HgmJavaTest's channel.
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.platform.engine.TestExecutionResult;
import org.junit.platform.engine.TestSource;
import org.junit.platform.engine.support.descriptor.MethodSource;
import org.junit.platform.launcher.TestExecutionListener;
import org.junit.platform.launcher.TestIdentifier;

public class HgmListener implements TestExecutionListener {
    private static final AtomicInteger FAILURES = new AtomicInteger();

    static int failures() {
        return FAILURES.get();
    }

    static String name(TestIdentifier id) {
        TestSource source = id.getSource().orElse(null);
        if (source instanceof MethodSource) {
            MethodSource method = (MethodSource) source;
            return method.getClassName() + "#" + method.getMethodName();
        }
        return id.getUniqueId();
    }

    @Override
    public void executionFinished(TestIdentifier id, TestExecutionResult result) {
        boolean passed = result.getStatus() == TestExecutionResult.Status.SUCCESSFUL;
        if (!passed) FAILURES.incrementAndGet();
        if (id.isTest()) HgmJavaTest.emit("test", HgmJavaTest.hex(name(id)), passed ? "passed" : "failed");
    }

    @Override
    public void executionSkipped(TestIdentifier id, String reason) {
        if (id.isTest()) HgmJavaTest.emit("test", HgmJavaTest.hex(name(id)), "skipped");
    }
}
