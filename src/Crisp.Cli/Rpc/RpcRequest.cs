using Crisp.Cli.CommandLine;
using Crisp.Rpc.Proto;

namespace Crisp.Cli.Rpc;

/// <summary>One DUMP or RESTORE request made ready to run as the CLI's command: the caller's images and work
/// directories resolved (images_dir_fd / work_dir_fd through /proc/PID/fd), the config file read (CRIU: its options
/// override the request's), crisp moved into the work dir, the log opened there, criu_opts turned into options.</summary>
public sealed class RpcRequest : IDisposable
{
    private readonly ParsedArguments _args;
    private readonly string _imagesDir;
    private readonly Log _log;
    private readonly Crisp.Scripts.IActionNotifier? _notifier;
    private readonly WorkDirectory _workDir;
    private Linux.UnixFd? _imagesHandle;

    private RpcRequest(ParsedArguments args, string imagesDir, WorkDirectory workDir, Log log, Crisp.Scripts.IActionNotifier? notifier)
    {
        (_args, _imagesDir, _workDir, _log, _notifier) = (args, imagesDir, workDir, log, notifier);
    }

    public static RpcRequest Open(RpcChannel channel, criu_opts? opts, criu_req_type type, bool standalone, TimeSpan notifyTimeout)
    {
        if (opts is null)
            throw new RpcRequestException($"a {type} request needs criu_opts");
        string verb = type switch
        {
            criu_req_type.Dump => "dump",
            criu_req_type.PreDump or criu_req_type.SinglePreDump => "pre-dump",
            _ => "restore",
        };
        int caller = CallerFiles.PeerPid(channel.Fd);

        // The config file first: its images-dir, work-dir and log-file win over the request's (cr-service.c).
        var configWords = opts.HasConfigFile ? CriuConfigFile.Read(opts.ConfigFile) : [];
        ParsedArguments config;
        try
        {
            config = ArgumentParser.Parse(configWords, CriuOptions.All);
        }
        catch (UsageException e)
        {
            throw new RpcRequestException($"config_file {opts.ConfigFile}: {e.Message}");
        }
        if (config.Positionals.Count > 0)
            throw new RpcRequestException($"config_file {opts.ConfigFile}: '{config.Positionals[0]}' is not an option");

        string imagesDir = config.Get("images-dir") is { } ci ? Absolute(ci, "images-dir in config_file")
            : opts.ImagesDirFd != -1 ? CallerFiles.Directory(caller, opts.ImagesDirFd, "images_dir_fd")
            : opts.HasImagesDir ? Absolute(opts.ImagesDir, "images_dir")
            : throw new RpcRequestException("neither criu_opts.images_dir_fd nor criu_opts.images_dir was given");
        if (!Directory.Exists(imagesDir))
            throw new CrispException($"images directory {imagesDir} does not exist") { Errno = Linux.Errnos.ENOENT };
        // images_dir_fd is used as the caller's open directory itself (images are opened relative to it); the path
        // above names it in messages and for scripts and plugins.
        bool byFd = config.Get("images-dir") is null && opts.ImagesDirFd != -1;
        string workDir = config.Get("work-dir") is { } cw ? Absolute(cw, "work-dir in config_file")
            : opts.HasWorkDirFd ? CallerFiles.Directory(caller, opts.WorkDirFd, "work_dir_fd")
            : imagesDir;
        string? logFile = config.Get("log-file");
        if (logFile is null && opts.HasLogFile)
        {
            if (opts.LogFile.Contains('/'))
                throw new RpcRequestException($"criu_opts.log_file '{opts.LogFile}' names a subdirectory: give a file name (it goes in the work dir)");
            logFile = opts.LogFile;
        }

        var words = new List<string> { verb, $"--verbosity={opts.LogLevel}" };
        if (type == criu_req_type.Restore)
            words.Add("--restore-detached");   // as CRIU's service: the caller gets the pid, crisp does not wait
        int statusFd = -1;
        var items = CriuOptsWords.For(opts, type, standalone);
        if (opts.HasStatusFd)
        {
            statusFd = CallerFiles.OpenForWriting(caller, opts.StatusFd, "status_fd");
            items.Add(new CriuOptsWords.Item("status_fd", [$"--status-fd={statusFd}"]));
        }
        words.AddRange(items.SelectMany(i => i.Words));
        words.AddRange(configWords.Where(w => !IsDirectoryWord(w)));
        ParsedArguments args;
        try
        {
            args = ArgumentParser.Parse(words, CriuOptions.All);
        }
        catch (UsageException e)
        {
            if (statusFd >= 0)
                Linux.FileIo.Close(statusFd);
            throw new RpcRequestException(e.Message);
        }

        // The request's own work dir, held open: the service's current directory is never changed, so requests
        // one after another each get theirs.
        WorkDirectory work;
        try
        {
            work = config.Get("work-dir") is null && opts.HasWorkDirFd
                ? new WorkDirectory { Handle = CallerFiles.OpenDirectory(caller, opts.WorkDirFd, "work_dir_fd"), Path = workDir }
                : WorkDirectory.Open(workDir);
        }
        catch (CrispException e)
        {
            throw new CrispException($"Can't change directory to the work dir {workDir}: {e.Message}");
        }
        Linux.UnixFd? imagesHandle = null;
        try
        {
            imagesHandle = byFd ? CallerFiles.OpenDirectory(caller, opts.ImagesDirFd, "images_dir_fd") : null;
        }
        catch
        {
            work.Dispose();
            throw;
        }
        Log log;
        try
        {
            log = logFile is null ? Log.Null
                : new Log(new StreamWriter(Crisp.Security.PrivateFile.CreateLog(work.Resolve(logFile), CommandContext.ImagesMode(args).File)),
                    Program.Verbosity(args), ownsWriter: true);
        }
        catch
        {
            work.Dispose();
            imagesHandle?.Dispose();
            throw;
        }
        log.Info($"crisp {verb} over RPC (caller pid {caller}{(standalone ? ", service" : ", swrk")}): images {imagesDir}, work dir {workDir}");
        var notifier = opts.NotifyScripts ? new RpcNotifier(channel, notifyTimeout) : null;
        return new RpcRequest(args, imagesDir, work, log, notifier) { _imagesHandle = imagesHandle };
    }

    /// <summary>Runs the CLI's command for the request; returns the restored root's pid (-1 for a dump). A failure is
    /// logged (the stack trace at -v4) and thrown on, for the response.</summary>
    public int Run(Func<CommandContext, int> command)
    {
        int restored = -1;
        var ctx = new CommandContext(_args, _log, TextWriter.Null)
        {
            ResolvedImagesDir = _imagesDir,
            ImagesDirHandle = _imagesHandle,
            WorkDir = _workDir,
            Notifier = _notifier,
            ShowProgress = false,
            OnRestored = tree => restored = tree.RootPid,
        };
        try
        {
            command(ctx);
        }
        catch (Exception e)
        {
            _log.Error(e.Message.ReplaceLineEndings(" "));
            _log.Debug(e.ToString());
            throw;
        }
        return restored;
    }

    public void Dispose()
    {
        _log.Dispose();
        _workDir.Dispose();
        _imagesHandle?.Dispose();
    }

    private static bool IsDirectoryWord(string word) =>
        word.StartsWith("--images-dir=", StringComparison.Ordinal) || word.StartsWith("--work-dir=", StringComparison.Ordinal)
        || word.StartsWith("--log-file=", StringComparison.Ordinal);

    /// <summary>crisp's service has no directory of its own the caller could mean: paths must be absolute.</summary>
    private static string Absolute(string path, string what) => Path.IsPathRooted(path) ? path
        : throw new RpcRequestException($"{what} '{path}' is relative: give an absolute path (or images_dir_fd)");
}
