// Starts HiveMQ Community Edition's embedded broker for sluice's local stack and tests:
//   java -cp '<jars>/*' HiveMQLauncher.java <config folder> <data folder>
// (Java's single-file source launcher: nothing to compile). It runs until killed; SIGTERM stops
// it cleanly, SIGKILL is a crash (what the broker-fault tests do).
import com.hivemq.embedded.EmbeddedHiveMQ;
import java.nio.file.Files;
import java.nio.file.Path;

public class HiveMQLauncher {
    public static void main(String[] args) throws Exception {
        Path config = Path.of(args[0]);
        Path data = Path.of(args[1]);
        Path extensions = data.resolve("extensions");
        Files.createDirectories(extensions);
        EmbeddedHiveMQ hivemq = EmbeddedHiveMQ.builder()
                .withConfigurationFolder(config)
                .withDataFolder(data)
                .withExtensionsFolder(extensions)
                .build();
        Runtime.getRuntime().addShutdownHook(new Thread(() -> hivemq.stop().join()));
        hivemq.start().join();
        System.out.println("sluice-hivemq: started");
        Thread.currentThread().join();
    }
}
