import com.amazonaws.services.dynamodbv2.local.server.LocalDynamoDBRequestHandler;
import com.amazonaws.services.dynamodbv2.local.server.LocalDynamoDBServerHandler;
import java.net.InetSocketAddress;
import org.eclipse.jetty.server.Server;
import org.eclipse.jetty.server.handler.ContextHandler;
import org.eclipse.jetty.server.handler.ContextHandlerCollection;

/**
 * Starts DynamoDB Local listening on 127.0.0.1 only.
 *
 * Equivalent to {@code java -jar DynamoDBLocal.jar -port P -inMemory -sharedDb -disableTelemetry},
 * except for the bind address: DynamoDBProxyServer always builds {@code new Server(port)}, which binds
 * every interface, so we build the same Jetty handler tree ourselves on a loopback-only connector.
 * Telemetry code (ServerRunner.setUpTelemetry / DynamoDBProxyServer.start) is never reached.
 *
 * Usage: java -Djava.library.path=EMULATOR/DynamoDBLocal_lib -cp EMULATOR/DynamoDBLocal.jar:EMULATOR/DynamoDBLocal_lib/*:BUILD LoopbackLauncher PORT
 */
public final class LoopbackLauncher {
    private static final String HOST = "127.0.0.1";
    // Keep a strong reference so the level survives GC (same quietening as ServerRunner's static init).
    private static final java.util.logging.Logger SQLITE_LOG = java.util.logging.Logger.getLogger("com.almworks.sqlite4java");

    public static void main(String[] args) throws Exception {
        if (args.length != 1) {
            System.err.println("usage: LoopbackLauncher PORT");
            System.exit(2);
        }
        int port = Integer.parseInt(args[0]);
        if (port < 1 || port > 65535) {
            System.err.println("invalid port: " + port);
            System.exit(2);
        }
        System.setProperty("org.eclipse.jetty.util.log.announce", "false");
        System.setProperty("org.eclipse.jetty.LEVEL", "WARN");
        SQLITE_LOG.setLevel(java.util.logging.Level.WARNING);

        // Same as ServerRunner.createServer(): LocalDynamoDBRequestHandler(0, inMemory, dbPath, sharedDb, delayTransientStatuses)
        LocalDynamoDBServerHandler handler = new LocalDynamoDBServerHandler(
                new LocalDynamoDBRequestHandler(0, true, null, true, false), null);

        // Same handler tree as DynamoDBProxyServer.setUpHandler(), on a 127.0.0.1-only connector.
        ContextHandler context = new ContextHandler();
        context.setHandler(handler);
        ContextHandlerCollection contexts = new ContextHandlerCollection();
        contexts.addHandler(context);

        Server server = new Server(new InetSocketAddress(HOST, port));
        server.setHandler(contexts);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            try {
                server.stop();
            } catch (Exception ignored) {
                // shutting down anyway
            }
            handler.close();
        }));

        try {
            server.start();
        } catch (Exception e) {
            System.err.println("Could not start DynamoDB Local on " + HOST + ":" + port + ": " + e);
            try {
                server.stop();
            } catch (Exception ignored) {
                // already failing
            }
            System.exit(1);
        }
        System.out.println("DynamoDB Local listening on http://" + HOST + ":" + port + " (inMemory, sharedDb, no telemetry)");
        System.out.flush();
        server.join();
    }
}
