using System.Diagnostics;
using Crisp.Bench;
using Crisp.Dump;
using Crisp.Restore;

// crisp's memory path against the machine's own limits (docs/bench.md). Run through ./bench/run. Each target
// directory (by default the disk's page cache and a tmpfs) gets its own limits and crisp figures, from the same run.
var opt = BenchOptions.Parse(args);
if (opt is null)
    return 2;
int result = 0;
var tables = new List<string>();
foreach (string target in opt.Targets)
{
    var one = opt with { Dir = Path.Combine(target, $"crisp-bench-{Environment.ProcessId}") };
    Directory.CreateDirectory(one.Dir);
    try
    {
        var bench = new Bench(one);
        result |= bench.Run();
        tables.Add(bench.Table());
    }
    finally
    {
        try { Directory.Delete(one.Dir, recursive: true); } catch (IOException) { }
    }
}
Console.WriteLine();
foreach (var t in tables)
    Console.WriteLine(t);
return result;

namespace Crisp.Bench
{
    public sealed record BenchOptions(string Tools, string Dir, int Runs, long[] SizesMiB, bool Scaling, int SparseGiB, string? EncryptKey = null, string? Crisp = null)
    {
        /// <summary>Directories the images go to, each measured on its own (--dir, repeatable).</summary>
        public IReadOnlyList<string> Targets { get; init; } = DefaultTargets;
        /// <summary>Small-tree latencies through the CLI (bench/small-tree), rounds per case; 0: none.</summary>
        public int SmallTreeRounds { get; init; }
        public string SmallTreeScript { get; init; } = "";

        /// <summary>The disk's page cache and a tmpfs, where the limits are near memcpy and crisp's own costs show.</summary>
        public static readonly string[] DefaultTargets = ["/var/tmp", "/dev/shm"];

        public static BenchOptions? Parse(string[] args)
        {
            string tools = "";
            bool quick = false, scaling = true, smallTree = true;
            int? runs = null;
            long[]? sizes = null;
            string? encryptKey = null, crisp = null, script = null;
            var targets = new List<string>();
            for (int i = 0; i < args.Length; i++)
            {
                switch (args[i])
                {
                    case "--tools": tools = args[++i]; break;
                    case "--dir": targets.Add(Path.GetFullPath(args[++i])); break;
                    case "--quick": quick = true; break;
                    case "--runs": runs = int.Parse(args[++i]); break;
                    case "--sizes": sizes = [.. args[++i].Split(',').Select(long.Parse)]; break;
                    case "--no-scaling": scaling = false; break;
                    case "--no-small-tree": smallTree = false; break;
                    case "--small-tree": script = Path.GetFullPath(args[++i]); break;
                    case "--encrypt-key": encryptKey = Path.GetFullPath(args[++i]); break;
                    case "--crisp": crisp = Path.GetFullPath(args[++i]); break;
                    default:
                        Console.Error.WriteLine($"crisp-bench: unknown option {args[i]}");
                        Console.Error.WriteLine("usage: bench/run [--quick] [--runs N] [--sizes MiB,MiB] [--no-scaling] [--no-small-tree] [--dir DIR]... [--encrypt-key KEYFILE] [--crisp CLI]");
                        return null;
                }
            }
            int r = runs ?? 3;
            return new BenchOptions(tools, "", r, sizes ?? (quick ? [256, 1024] : [256, 1024, 4096]), scaling, 64, encryptKey, crisp)
            {
                Targets = targets.Count > 0 ? targets : DefaultTargets,
                SmallTreeRounds = smallTree && crisp is not null && script is not null ? Math.Max(3, 2 * r) : 0,
                SmallTreeScript = script ?? "",
            };
        }
    }

    /// <summary>Times of one measured thing over several runs.</summary>
    public sealed class Sample
    {
        private readonly List<double> _s = [];
        public void Add(double seconds) => _s.Add(seconds);
        public void Add(TimeSpan t) => _s.Add(t.TotalSeconds);
        public double Best => _s.Count == 0 ? double.NaN : _s.Min();
        public double Median => _s.Count == 0 ? double.NaN : _s.Order().ElementAt(_s.Count / 2);
    }

    public sealed class Bench(BenchOptions opt)
    {
        private readonly string _mem = Path.Combine(opt.Tools, "bench_mem");
        private readonly string _limits = Path.Combine(opt.Tools, "limits");
        private readonly List<string[]> _rows = [];
        private bool _allVerified = true;

        public int Run()
        {
            Console.Error.WriteLine($"crisp-bench: images in {opt.Dir} ({FsType(opt.Dir)}), {opt.Runs} run(s) per size");
            Cycle("dense", 16, out _, out _, out _, out _, leaveRunning: true);   // warm-up: JIT and page cache, not counted
            _memcpy = MemcpySeconds(1024);
            _rows.Add(["memcpy 1 GiB", Ms(_memcpy), Ms(_memcpy), Gbs(1024, _memcpy), "", ""]);
            foreach (long mib in opt.SizesMiB)
                Size(mib);
            if (opt.Scaling)
                Scaling();
            if (opt.SmallTreeRounds > 0)
                SmallTrees();
            Console.WriteLine(_allVerified ? "restored memory: verified identical in every run" : "restored memory: MISMATCH (see above)");
            return _allVerified ? 0 : 1;
        }

        private double _memcpy;

        /// <summary>Limits and crisp figures of one size. Every run measures the limits on the target directory
        /// (best of three probes each) right before crisp's cycle, and each crisp figure is given as a ratio to the
        /// limit of its own run (the median of the runs' ratios): a machine whose disk or load changes between runs
        /// does not skew the ratio.</summary>
        private void Size(long mib)
        {
            Sample write = new(), read = new(), readWarm = new(), copyOut = new(), dump = new(), restore = new(), freeze = new(), gap = new(), lrDump = new();
            Sample dumpRatio = new(), dumpCopyOutRatio = new(), restoreRatio = new(), restoreWarmRatio = new();
            long imageBytes = 0;
            for (int run = 0; run < opt.Runs; run++)
            {
                Console.Error.WriteLine($"  {Label(mib)} run {run + 1}/{opt.Runs}");
                string file = Path.Combine(opt.Dir, "limit.bin");
                double w = double.MaxValue, r = double.MaxValue, rw = double.MaxValue;
                for (int probe = 0; probe < 3; probe++)
                {
                    w = Math.Min(w, Tool("write", file, mib.ToString()));
                    r = Math.Min(r, Tool("read", file));
                    rw = Math.Min(rw, Tool("readwarm", file));
                }
                File.Delete(file);
                // Best of three rounds inside the tool (it holds the source process for all three).
                double co = Tool("copyout", file, mib.ToString());
                write.Add(w);
                copyOut.Add(co);
                read.Add(r);
                readWarm.Add(rw);
                Cycle("dense", mib, out var d, out var rs, out imageBytes, out var lr, leaveRunning: true);
                dump.Add(d);
                restore.Add(rs);
                freeze.Add(lr.Frozen);
                gap.Add(lr.Gap);
                lrDump.Add(lr.Dump);
                dumpRatio.Add(w / d);
                dumpCopyOutRatio.Add(co / d);
                restoreRatio.Add(r / rs);
                restoreWarmRatio.Add(rw / rs);
            }
            Console.Error.WriteLine($"  {Label(mib)} through the CLI (peak RSS, time)");
            var rss = CliFootprint("dense", mib, leaveRunning: true);
            string l = Label(mib);
            double copy = _memcpy * mib / 1024.0;
            _rows.Add([$"{l}: write limit", Ms(write.Best), Ms(write.Median), Gbs(mib, write.Best), "1 MiB writes from a hot buffer into a new file", ""]);
            _rows.Add([$"{l}: read limit", Ms(read.Best), Ms(read.Median), Gbs(mib, read.Best), "into fresh memory (as a restore fills a puppet)", ""]);
            _rows.Add([$"{l}: read into touched memory", Ms(readWarm.Best), Ms(readWarm.Median), Gbs(mib, readWarm.Best), "copy alone, no fresh-page faults", ""]);
            _rows.Add([$"{l}: copy-out limit", Ms(copyOut.Best), Ms(copyOut.Median), Gbs(mib, copyOut.Best), "another process's pages into a new file: process_vm_readv | write() on two threads, no hash", ""]);
            _rows.Add([$"{l}: crisp dump", Ms(dump.Best), Ms(dump.Median), Gbs(mib, dump.Best), $"{dumpRatio.Median:F2} of write (goal 0.80), {dumpCopyOutRatio.Median:F2} of copy-out", MiB(rss?.Dump)]);
            _rows.Add([$"{l}: crisp restore", Ms(restore.Best), Ms(restore.Median), Gbs(mib, restore.Best), $"{restoreRatio.Median:F2} of read (goal 0.80), {restoreWarmRatio.Median:F2} of touched read", MiB(rss?.Restore)]);
            // The shipped binary (NativeAOT) once, start-up included: the rows above run crisp in this process (CoreCLR),
            // which differed from it once (a thread's inherited CPU mask, design.md "Compel").
            if (rss is { } cli)
            {
                _rows.Add([$"{l}: CLI dump, one run", Ms(cli.DumpSeconds), "", Gbs(mib, cli.DumpSeconds), $"{write.Best / cli.DumpSeconds:F2} of the best write, {copyOut.Best / cli.DumpSeconds:F2} of the best copy-out", ""]);
                _rows.Add([$"{l}: CLI restore -d, one run", Ms(cli.RestoreSeconds), "", Gbs(mib, cli.RestoreSeconds), $"{read.Best / cli.RestoreSeconds:F2} of the best read", ""]);
            }
            _rows.Add([$"{l}: dump -R, frozen ms", Ms(freeze.Best), Ms(freeze.Median), "", $"all stops; longest the workload saw {Ms(gap.Median)} ms; memcpy of the pages {Ms(copy)} ms (goal: + 20 ms); dump -R total {Ms(lrDump.Best)} ms", MiB(rss?.DumpR)]);
            _rows.Add([$"{l}: image size", $"{imageBytes / 1048576.0:F1} MiB", "", "", $"{(double)imageBytes / (mib << 20):F3} of memory", ""]);
            if (mib == 1024)
                _oneGiB = (dump.Best, write.Best, restore.Best, read.Best, dumpRatio.Median, restoreRatio.Median);
        }

        /// <summary>Small trees through the CLI, as a user runs them (bench/small-tree): start-up included.</summary>
        private void SmallTrees()
        {
            Console.Error.WriteLine($"  small trees through the CLI, {opt.SmallTreeRounds} rounds each");
            var psi = new ProcessStartInfo("/usr/bin/python3") { RedirectStandardOutput = true };
            foreach (var a in new[] { opt.SmallTreeScript, "--crisp", opt.Crisp!, "--dir", opt.Dir, "--rounds", opt.SmallTreeRounds.ToString(), "--tools", opt.Tools, "--json" })
                psi.ArgumentList.Add(a);
            using var p = Process.Start(psi)!;
            string output = p.StandardOutput.ReadToEnd();
            p.WaitForExit();
            if (p.ExitCode != 0)
            {
                _rows.Add(["small trees", "", "", "", $"bench/small-tree failed ({p.ExitCode})", ""]);
                return;
            }
            foreach (var line in output.Split('\n', StringSplitOptions.RemoveEmptyEntries))
            {
                using var row = System.Text.Json.JsonDocument.Parse(line);
                var e = row.RootElement;
                string what = e.GetProperty("case").GetString()!;
                // Issue 18's goal is the bash loop's; the larger trees are reported beside it.
                string note = what.StartsWith("bash", StringComparison.Ordinal) ? "median (goal 30 ms)" : "median";
                _rows.Add([$"{what}: CLI dump", "", e.GetProperty("dump_ms").GetDouble().ToString("F0"), "", note, MiB(e.GetProperty("dump_rss_kib").GetInt64())]);
                _rows.Add([$"{what}: CLI restore -d", "", e.GetProperty("restore_ms").GetDouble().ToString("F0"), "", note, MiB(e.GetProperty("restore_rss_kib").GetInt64())]);
            }
        }

        private (double Dump, double Write, double Restore, double Read, double DumpRatio, double RestoreRatio)? _oneGiB;

        private void Scaling()
        {
            foreach (var (mode, n, what) in new (string, long, string)[]
                     { ("vmas", 10000, "10,000 VMAs"), ("procs", 100, "100 processes"), ("threads", 100, "100 threads"), ("sparse", opt.SparseGiB, $"sparse {opt.SparseGiB} GiB, 1% touched") })
            {
                Console.Error.WriteLine($"  {what}");
                Cycle(mode, n, out var d, out var r, out long bytes, out _, leaveRunning: false);
                var rss = CliFootprint(mode, n, leaveRunning: false);
                string note = $"image {bytes / 1048576.0:F1} MiB";
                if (mode == "sparse")
                {
                    // Time per stored byte against the dense 1 GiB case: 1 means it follows touched pages only.
                    double touchedMiB = (n << 10) / 100.0;
                    if (_oneGiB is { } g)
                        note += $"; per touched page {d / (touchedMiB / 1024) / g.Dump:F2}x dense dump, {r / (touchedMiB / 1024) / g.Restore:F2}x dense restore";
                }
                _rows.Add([$"{what}: dump", Ms(d), "", "", note, MiB(rss?.Dump)]);
                _rows.Add([$"{what}: restore", Ms(r), "", "", "", MiB(rss?.Restore)]);
            }
        }

        /// <summary>Start, dump (killing), restore, optionally a --leave-running dump, then the workload
        /// checks its memory and exits.</summary>
        private void Cycle(string mode, long arg, out double dump, out double restore, out long imageBytes,
            out (double Frozen, double Gap, double Dump) frozen, bool leaveRunning)
        {
            string images = Path.Combine(opt.Dir, "images"), images2 = Path.Combine(opt.Dir, "images-r");
            frozen = (double.NaN, double.NaN, double.NaN);
            using var w = Workload.Start(_mem, opt.Dir, mode, arg);
            try
            {
                var stats = new Dumper(new DumpOptions { RootPid = w.Pid, ImagesDir = images, EncryptKey = opt.EncryptKey }, Log.Null).Run();
                dump = stats.ImagesWrittenAt.TotalSeconds;
                imageBytes = Directory.EnumerateFiles(images).Sum(f => new FileInfo(f).Length);
                w.WaitGone();
                WaitTreeGone(images, opt.EncryptKey);

                var clock = Stopwatch.StartNew();
                var tree = new Restorer(new RestoreOptions { ImagesDir = images, Detached = true, EncryptKey = opt.EncryptKey }, Log.Null).Run();
                restore = clock.Elapsed.TotalSeconds;
                if (leaveRunning)
                {
                    Thread.Sleep(20);
                    w.TakeGap();   // forget the stop between dump and restore
                    Thread.Sleep(20);
                    var lr = new Dumper(new DumpOptions { RootPid = tree.RootPid, ImagesDir = images2, LeaveRunning = true }, Log.Null).Run();
                    Thread.Sleep(20);
                    // Frozen: every stop of the tree added (a large tree's dump stops it twice, design.md "Freeze time");
                    // the gap: the longest one the workload's own 1 ms ticker saw.
                    frozen = (lr.Counters.Frozen.TotalSeconds, w.TakeGap().TotalSeconds, lr.Total.TotalSeconds);
                }
                w.Signal(Workload.SIGUSR1);
                int exit = tree.WaitForExit();
                string verdict = w.WaitFor(l => l is "ok" or "BAD", "ok");
                if (exit != 0 || verdict != "ok")
                {
                    _allVerified = false;
                    Console.Error.WriteLine($"crisp-bench: {mode} {arg}: restored memory differs (exit {exit}, {verdict})");
                }
            }
            finally
            {
                foreach (var d in new[] { images, images2 })
                    if (Directory.Exists(d))
                        Directory.Delete(d, recursive: true);
            }
        }

        /// <summary>The same cycle through the crisp CLI (--crisp), each run's peak resident memory in KiB from
        /// wait4: dump (killing), restore -d and, with <paramref name="leaveRunning"/>, dump -R of the restored tree.
        /// Also the wall time of the dump and the restore: the shipped binary's own figures beside the in-process rows.</summary>
        private (long Dump, long Restore, long DumpR, double DumpSeconds, double RestoreSeconds)? CliFootprint(string mode, long arg, bool leaveRunning)
        {
            if (opt.Crisp is not { } crisp)
                return null;
            string images = Path.Combine(opt.Dir, "cli-images"), images2 = Path.Combine(opt.Dir, "cli-images-r");
            string[] key = opt.EncryptKey is { } k ? ["--encrypt-key", k] : [];
            using var w = Workload.Start(_mem, opt.Dir, mode, arg);
            try
            {
                var (dump, dumpSeconds) = CliRun.Timed(opt.Tools, crisp, opt.Dir, ["dump", "-t", w.Pid.ToString(), "-D", images, .. key]);
                w.WaitGone();
                WaitTreeGone(images, opt.EncryptKey);
                var (restore, restoreSeconds) = CliRun.Timed(opt.Tools, crisp, opt.Dir, ["restore", "-d", "-D", images, .. key]);
                long dumpR = leaveRunning ? CliRun.PeakRssKiB(opt.Tools, crisp, opt.Dir, ["dump", "-R", "-t", w.Pid.ToString(), "-D", images2, .. key]) : 0;
                w.Signal(Workload.SIGUSR1);
                if (w.WaitFor(l => l is "ok" or "BAD", "ok") != "ok")
                {
                    _allVerified = false;
                    Console.Error.WriteLine($"crisp-bench: {mode} {arg} through the CLI: restored memory differs");
                }
                return (dump, restore, dumpR, dumpSeconds, restoreSeconds);
            }
            finally
            {
                foreach (var d in new[] { images, images2 })
                    if (Directory.Exists(d))
                        Directory.Delete(d, recursive: true);
            }
        }

        /// <summary>Children of a killed tree go to init, which reaps slowly here: restore needs every PID free.</summary>
        private static void WaitTreeGone(string images, string? encryptKey)
        {
            var key = encryptKey is null ? null : Security.Encryption.ImageKey.Load(encryptKey);
            using var dir = Images.ImageDirectory.Open(images, key);
            var pids = CheckpointLoader.ReadTree(dir).Select(t => t.Pid).ToList();
            var deadline = DateTime.UtcNow.AddSeconds(60);
            while (pids.Any(p => Directory.Exists($"/proc/{p}")))
            {
                if (DateTime.UtcNow > deadline)
                    throw new TimeoutException("the dumped tree's PIDs did not become free");
                Thread.Sleep(5);
            }
        }

        private double MemcpySeconds(long mib) => Enumerable.Range(0, 3).Min(_ => Tool("memcpy", mib.ToString()));

        private double Tool(params string[] args)
        {
            var psi = new ProcessStartInfo(_limits) { RedirectStandardOutput = true };
            foreach (var a in args)
                psi.ArgumentList.Add(a);
            using var p = Process.Start(psi)!;
            string output = p.StandardOutput.ReadToEnd();
            p.WaitForExit();
            if (p.ExitCode != 0)
                throw new InvalidOperationException($"limits {string.Join(' ', args)} failed ({p.ExitCode})");
            return double.Parse(output.Trim(), System.Globalization.CultureInfo.InvariantCulture);
        }

        /// <summary>This target's table (markdown), printed once every target has run.</summary>
        public string Table()
        {
            var sb = new System.Text.StringBuilder();
            sb.AppendLine($"crisp bench: {Environment.ProcessorCount} CPUs, {MemGiB():F0} GiB RAM, kernel {File.ReadAllText("/proc/sys/kernel/osrelease").Trim()}, load {File.ReadAllText("/proc/loadavg").Split(' ')[0]}, images on {Path.GetDirectoryName(opt.Dir)} ({FsType(opt.Dir)})");
            sb.AppendLine();
            string[] head = ["what", "best ms", "median ms", "GiB/s (best)", "ratio to the limit of the same run / note", "crisp peak RSS MiB (CLI)"];
            sb.AppendLine("| " + string.Join(" | ", head) + " |");
            sb.AppendLine("|" + string.Concat(head.Select((_, i) => i == 0 ? "---|" : "---:|")));
            foreach (var r in _rows)
                sb.AppendLine("| " + string.Join(" | ", r) + " |");
            sb.AppendLine();
            sb.AppendLine(opt.Crisp is null
                ? "peak RSS: not measured (no --crisp CLI given)"
                : "peak RSS: ru_maxrss of the crisp CLI (wait4, bench/workloads/peak_rss.c), one run per case; CRIU 4.2 peaks at ~8 MiB on the 256 MiB case (issue 24)");
            if (_oneGiB is { } g)
                sb.AppendLine($"1 GiB goal (median of the runs' ratios): dump {g.DumpRatio:F2} of the write limit (goal 0.80), restore {g.RestoreRatio:F2} of the read limit (goal 0.80)");
            return sb.ToString();
        }

        /// <summary>The file system the directory is on (longest mount point of /proc/mounts that holds it).</summary>
        private static string FsType(string dir)
        {
            string full = Path.GetFullPath(dir), best = "", type = "?";
            foreach (var line in File.ReadLines("/proc/mounts"))
            {
                var f = line.Split(' ');
                if (f.Length > 2 && (full == f[1] || full.StartsWith(f[1].TrimEnd('/') + "/", StringComparison.Ordinal)) && f[1].Length >= best.Length)
                    (best, type) = (f[1], f[2]);
            }
            return type;
        }

        private static double MemGiB() =>
            long.Parse(File.ReadLines("/proc/meminfo").First().Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]) / 1048576.0;

        private static string Label(long mib) => mib >= 1024 ? $"{mib / 1024} GiB" : $"{mib} MiB";
        private static string MiB(long? kib) => kib is > 0 ? $"{kib.Value / 1024.0:F1}" : "";
        private static string Ms(double s) => double.IsNaN(s) ? "" : (s * 1000).ToString("F0");
        private static string Gbs(long mib, double s) => (mib / 1024.0 / s).ToString("F2");
    }
}
