// Threads OUT DIR -- Java threads across a checkpoint (tests/Crisp.Tests/Runtimes).
// A scheduled executor numbers ticks into a queue, a consumer thread writes them to OUT ("N tick"), one
// thread waits on a monitor that the main thread notifies once DIR/release exists ("released").
import java.io.*;
import java.nio.file.*;
import java.util.concurrent.*;

public class Threads {
    public static void main(String[] args) throws Exception {
        PrintWriter out = new PrintWriter(new FileWriter(args[0], true));
        Path release = Paths.get(args[1], "release");
        BlockingQueue<Long> ticks = new LinkedBlockingQueue<>();
        long[] n = {0};
        ScheduledExecutorService timer = Executors.newSingleThreadScheduledExecutor();
        timer.scheduleAtFixedRate(() -> ticks.add(++n[0]), 0, 20, TimeUnit.MILLISECONDS);
        Thread consumer = new Thread(() -> {
            try {
                while (true) {
                    long t = ticks.take();
                    synchronized (out) { out.println(t + " tick"); out.flush(); }
                }
            } catch (InterruptedException e) { }
        }, "consumer");
        consumer.setDaemon(true);
        consumer.start();
        Object monitor = new Object();
        boolean[] go = {false};
        Thread blocked = new Thread(() -> {
            synchronized (monitor) {
                while (!go[0]) {
                    try { monitor.wait(); } catch (InterruptedException e) { return; }
                }
            }
            synchronized (out) { out.println("released"); out.flush(); }
        }, "blocked");
        blocked.setDaemon(true);
        blocked.start();
        while (!Files.exists(release))
            Thread.sleep(50);
        synchronized (monitor) { go[0] = true; monitor.notifyAll(); }
        Thread.sleep(Long.MAX_VALUE);
    }
}
