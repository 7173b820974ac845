using Crisp.Cli.CommandLine;
using Crisp.Cli.Commands;

namespace Crisp.Cli;

public static class Program
{
    private const int DefaultVerbosity = 2;

    private static readonly Dictionary<string, Func<CommandContext, int>> Verbs = new()
    {
        ["check"] = CheckCommand.Run,
        ["show"] = ShowCommand.Run,
        ["dump"] = DumpCommand.Run,
        ["pre-dump"] = DumpCommand.RunPreDump,
        ["page-server"] = PageServerCommand.Run,
        ["migrate"] = MigrateCommand.Run,
        ["receive"] = MigrateCommand.Receive,
        ["lazy-pages"] = LazyPagesCommand.Run,
        ["restore"] = RestoreCommand.Run,
        ["demo"] = DemoCommand.Run,
        ["decode"] = DecodeCommand.Run,
        ["encode"] = EncodeCommand.Run,
        ["manifest"] = ManifestCommand.Run,
        ["x"] = ExploreCommand.Run,
        ["service"] = ServiceCommand.Run,
        ["install"] = InstallCommand.Run,
        ["inspect"] = InspectCommand.Run,
    };

    /// <summary>crit's verbs, where -o names the output file rather than the log.</summary>
    private static readonly HashSet<string> OutputVerbs = ["decode", "encode"];

    public static int Main(string[] argv)
    {
        Crisp.Linux.HugeNursery.Back();
        ParsedArguments args;
        try
        {
            args = ArgumentParser.Parse(argv, CriuOptions.All);
        }
        catch (UsageException e)
        {
            Console.Error.WriteLine($"crisp: {e.Message}");
            return 1;
        }
        // Before anything that could print: in swrk mode fds 0-2 belong to the caller (a container's stdio).
        if (args.Positionals is ["swrk", ..])
            return SwrkCommand.Run(args);
        if (args.Has("version"))
        {
            // CRIU's shape ("Version: X.Y"), as the CRIU release crisp answers for; then crisp's own.
            Console.WriteLine($"Version: {Rpc.CriuCompat.Version}");
            Console.WriteLine($"Name: {Rpc.CriuCompat.Name}");
            return 0;
        }
        if (args.Has("help") || args.Positionals.Count == 0)
        {
            Console.WriteLine(Usage());
            return args.Positionals.Count == 0 && !args.Has("help") ? 1 : 0;
        }
        string verb = args.Positionals[0];
        if (!Verbs.TryGetValue(verb, out var run))
        {
            Console.Error.WriteLine($"crisp: unknown command '{verb}' (try: {string.Join(", ", Verbs.Keys)})");
            return 1;
        }

        Log log;
        string? imagesDir;
        bool createdImagesDir;
        WorkDirectory? workDir;
        string startDirectory = Environment.CurrentDirectory;
        try
        {
            (imagesDir, createdImagesDir, workDir) = OpenWorkDir(verb, args);
            log = OpenLog(args, workDir, logToFile: !OutputVerbs.Contains(verb));
        }
        catch (Exception e) when (e is UsageException or IOException or UnauthorizedAccessException)
        {
            Console.Error.WriteLine($"crisp: {e.Message}");
            return 1;
        }
        // Opened once, here: dump and restore read and write relative to this directory, not to the path again.
        using var imagesHandle = imagesDir is not null && Directory.Exists(imagesDir) ? Crisp.Images.ImageDirectory.OpenHandle(imagesDir) : null;
        using (workDir)
        using (log)
            return RunVerb(run, new CommandContext(args, log, Console.Out)
            {
                ResolvedImagesDir = imagesDir, ImagesDirHandle = imagesHandle, CreatedImagesDir = createdImagesDir, AsCriu = StartedAsCriu(),
                StartDirectory = startDirectory, WorkDir = workDir,
            });
    }

    private static int RunVerb(Func<CommandContext, int> run, CommandContext ctx)
    {
        try
        {
            return run(ctx);
        }
        catch (UsageException e)
        {
            Console.Error.WriteLine($"crisp: {e.Message}");
            return 1;
        }
        catch (Crisp.Scripts.ActionScriptException e) when (e.Action == "post-dump")
        {
            // As CRIU: the tree runs on, and the script's own exit code is the dump's.
            if (!ctx.Log.WritesTo(Console.Error))
                ctx.Log.Error($"Dumping FAILED: {e.Message}");
            Console.Error.WriteLine($"crisp: error: {e.Message}");
            return e.ExitCode;
        }
        catch (Exception e)
        {
            // One line for the user; the stack trace only in the log at -v4.
            bool expected = e is CrispException or Crisp.Linux.SyscallException or IOException or UnauthorizedAccessException;
            string line = OneLine(expected ? e.Message : $"internal error: {e.GetType().Name}: {e.Message}");
            if (!ctx.Log.WritesTo(Console.Error))   // else the user would see the error twice
                ctx.Log.Error(line);
            ctx.Log.Debug($"{e}");   // formatted only at -v4: a stack trace costs milliseconds to resolve
            Console.Error.WriteLine($"crisp: error: {line}");
            return 1;
        }
    }

    /// <summary>argv[0] is `criu` (crisp installed under CRIU's name): /proc/self/exe would name crisp.</summary>
    private static bool StartedAsCriu()
    {
        try
        {
            string cmdline = Crisp.Linux.Proc.ProcFiles.ReadText("/proc/self/cmdline");
            int end = cmdline.IndexOf('\0');
            return Path.GetFileName(end >= 0 ? cmdline[..end] : cmdline) == "criu";
        }
        catch (IOException)
        {
            return false;
        }
    }

    /// <summary>The user gets exactly one line: fold any line breaks in a message.</summary>
    private static string OneLine(string message) =>
        string.Join(' ', message.Split(['\r', '\n'], StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));

    /// <summary>As CRIU: the images dir is resolved where crisp was started, and a relative log file, pidfile,
    /// action script and the stats files are under the work dir (-W, default the images dir) — CRIU changes into
    /// it; crisp holds it open instead (<see cref="WorkDirectory"/>) and keeps its own current directory. A dump
    /// creates its images dir first. Returns the full images dir (null for verbs that take none), whether it was
    /// made here (a failed dump removes it again) and the work dir.</summary>
    private static (string? ImagesDir, bool Created, WorkDirectory? WorkDir) OpenWorkDir(string verb, ParsedArguments args)
    {
        if (verb is not ("dump" or "pre-dump" or "page-server" or "restore" or "lazy-pages"))
            return (null, false, null);
        bool created = false;
        string? images = args.Get("images-dir");
        string? full = images is null ? null : Path.GetFullPath(images);
        if (verb is "dump" or "pre-dump" or "page-server" && full is not null && !Directory.Exists(full))
        {
            Crisp.Security.PrivateFile.CreateDirectory(full, CommandContext.ImagesMode(args).Directory);
            created = true;
        }
        string? work = args.Get("work-dir") ?? images;
        if (work is not null)
        {
            if (!Directory.Exists(work))
                throw new UsageException($"Can't change directory to {work}: No such file or directory");
        }
        return (full, created, work is null ? null : WorkDirectory.Open(work));
    }

    private static Log OpenLog(ParsedArguments args, WorkDirectory? workDir, bool logToFile)
    {
        int verbosity = Verbosity(args);
        string? file = logToFile ? args.Get("log-file") : null;
        if (file is null || file == "-")
            return Log.ToStderr(verbosity);
        file = workDir?.Resolve(file) ?? file;
        // Private as the images: a -v4 log names files, addresses and paths of the dumped process.
        var stream = Crisp.Security.PrivateFile.CreateLog(file, CommandContext.ImagesMode(args).File);
        return new Log(new StreamWriter(stream), verbosity, ownsWriter: true);
    }

    /// <summary>CRIU's -v rules: "-v" adds one, "-vvv" adds three, "-v4"/"--verbosity=4" sets it — and, as
    /// CRIU's getopt/atoi see it, any other attached text sets the number it starts with (0 when none):
    /// "-verbosity=0" is -v with "erbosity=0".</summary>
    public static int Verbosity(ParsedArguments args)
    {
        int level = DefaultVerbosity;
        foreach (string? v in args.GetAll("verbosity"))
        {
            if (v is null)
                level++;
            else if (v[0] == 'v')
                level += v.Length + 1;
            else
                level = Atoi(v);
        }
        return level;
    }

    /// <summary>C's atoi: optional blanks and sign, then the leading digits; 0 when there are none.</summary>
    private static int Atoi(string s)
    {
        var t = s.AsSpan().TrimStart(" \t\n\v\f\r");
        int sign = 1, i = 0;
        if (i < t.Length && t[i] is '+' or '-')
            sign = t[i++] == '-' ? -1 : 1;
        long n = 0;
        for (; i < t.Length && char.IsAsciiDigit(t[i]) && n < int.MaxValue; i++)
            n = n * 10 + (t[i] - '0');
        return (int)Math.Clamp(sign * n, int.MinValue, int.MaxValue);
    }

    private static string Usage() => $"""
        crisp: checkpoint/restore in userspace (CRIU-compatible images and options)

        Usage:
          crisp check                         probe this kernel for what crisp needs
          crisp dump -t PID -D DIR [-R]       checkpoint the process tree rooted at PID
          crisp pre-dump -t PID -D DIR        copy the tree's memory while it runs on (a chain: --prev-images-dir)
          crisp page-server --port P -D DIR   receive one dump's pages (dump --page-server --address A --port P)
          crisp migrate -t PID --to HOST[:PORT] [--lazy]   move a running tree to `crisp receive` on another host
          crisp receive [--port P] [-D DIR]   take one migrated tree and run it here
          crisp restore -D DIR [-d]           restore a checkpoint (--lazy-pages: memory filled on fault by lazy-pages)
          crisp lazy-pages -D DIR [--page-server --address A --port P]   fill a --lazy-pages restore's memory
          crisp show IMAGE|DIR                print an image as JSON (crit's shape) or summarise a checkpoint
          crisp decode [-i IMG] [-o JSON] [--pretty]   an image as crit's JSON (crit decode)
          crisp encode [-i JSON] [-o IMG]     JSON back into an image (crit encode)
          crisp manifest DIR [--update]       check, or after an edit rewrite, crisp-manifest.sha256
          crisp x DIR ps|fds|mems|rss         explore a checkpoint (crit x)
          crisp demo                          dump and restore a live hardened process
          crisp inspect DIR|ARCHIVE [--format json]   a checkpoint as checkpointctl shows it
          crisp swrk FD                       serve CRIU RPC on socket FD (what runc, Podman and libcriu start)
          crisp service --address SOCKET      serve CRIU RPC on a unix socket, one connection after another
          crisp install [--as-criu] [--prefix DIR] [--undo]   put crisp (and `criu`) into DIR/bin (/usr/local)

        Options:
        {CriuOptions.Help("")}
        """;
}
