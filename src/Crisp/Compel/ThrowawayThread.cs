using System.Runtime.ExceptionServices;

namespace Crisp.Compel;

/// <summary>Runs work on a fresh OS thread that ends with it (a thread that joins a task's namespace by setns, or
/// unshares one, so crisp's other threads never move) and waits for it. Called on a tracer thread — restore and
/// dump stages run there — the wait keeps serving that tracer's queue, so the work may itself use remote syscalls
/// or ptrace without a deadlock.</summary>
public static class ThrowawayThread
{
    public static T Run<T>(string name, int stackSize, Func<T> work)
    {
        var tracer = Tracer.Current;
        T result = default!;
        ExceptionDispatchInfo? error = null;
        bool done = false;
        var thread = new Thread(() =>
        {
            try { result = work(); }
            catch (Exception e) { error = ExceptionDispatchInfo.Capture(e); }
            finally
            {
                Volatile.Write(ref done, true);
                tracer?.Wake();
            }
        }, stackSize) { IsBackground = true, Name = name };
        thread.Start();
        tracer?.PumpUntil(() => Volatile.Read(ref done));
        thread.Join();
        error?.Throw();
        return result;
    }
}
