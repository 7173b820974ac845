// Program OUT DIR -- a .NET app across a checkpoint (tests/Crisp.Tests/Runtimes). A timer numbers ticks
// ("N timer"), a thread-pool loop allocates and forces a GC (the GC suspends threads with membarrier)
// and numbers its rounds too ("N pool"), one thread waits on an event the main thread sets once
// DIR/release exists ("released"). JIT'ed code lives in the runtime's memfd double mapping.
var gate = new object();
using var output = new StreamWriter(args[0], append: true) { AutoFlush = true };
string release = Path.Combine(args[1], "release");
long n = 0;
void Emit(string who) { lock (gate) { n++; output.WriteLine($"{n} {who}"); } }

using var timer = new Timer(_ => Emit("timer"), null, 0, 20);
_ = Task.Run(async () =>
{
    while (true)
    {
        var junk = new List<byte[]>();
        for (int i = 0; i < 64; i++)
            junk.Add(new byte[4096]);
        GC.Collect();
        Emit("pool");
        await Task.Delay(30);
    }
});
var go = new ManualResetEventSlim();
var blocked = new Thread(() => { go.Wait(); lock (gate) output.WriteLine("released"); }) { IsBackground = true, Name = "blocked" };
blocked.Start();
while (!File.Exists(release))
    Thread.Sleep(50);
go.Set();
Thread.Sleep(Timeout.Infinite);
