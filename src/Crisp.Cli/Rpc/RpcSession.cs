using Crisp.Cli.CommandLine;
using Crisp.Cli.Commands;
using Crisp.Linux;
using Crisp.Rpc.Proto;

namespace Crisp.Cli.Rpc;

/// <summary>Serves CRIU RPC requests on one connection (cr-service.c's cr_service_work): one request, or more while
/// each asks keep_open; every request gets exactly one response, a failure as success=false with cr_errno and one
/// cr_errmsg line. DUMP and RESTORE run the CLI's own commands with criu_opts as their options
/// (<see cref="CriuOptsWords"/>). Nothing is ever written to fds 0-2: they are the caller's (a container's stdio);
/// the log goes to criu_opts.log_file in the work dir, or nowhere.</summary>
public sealed class RpcSession(RpcChannel channel, bool standalone, TimeSpan notifyTimeout)
{
    /// <summary>Requests CRIU serves more than one of on a connection (chk_keepopen_req).</summary>
    private static readonly HashSet<criu_req_type> KeepOpenTypes =
        [criu_req_type.Version, criu_req_type.FeatureCheck, criu_req_type.PageServer, criu_req_type.PageServerChld,
         criu_req_type.CpuinfoDump, criu_req_type.CpuinfoCheck];

    /// <summary>Serves until a request without keep_open has been answered or the client has gone. Returns 0 once the
    /// last response is sent (whatever it said), 1 when the client could not be answered.</summary>
    public int Serve()
    {
        while (true)
        {
            criu_req? req;
            try
            {
                req = channel.Receive();
            }
            catch (RpcRequestException e)
            {
                return Answer(Failure(criu_req_type.Empty, e)) ? 0 : 1;   // as CRIU: a bad packet ends the session
            }
            catch (SyscallException)
            {
                return 1;
            }
            if (req is null)
                return 0;   // the client went away between requests
            var resp = req.KeepOpen && !KeepOpenTypes.Contains(req.Type)
                ? Failure(req.Type, new RpcRequestException($"keep_open works only with VERSION, FEATURE_CHECK, PAGE_SERVER and CPUINFO requests, not {req.Type}"))
                : Handle(req);
            if (!Answer(resp))
                return 1;
            if (!req.KeepOpen || !resp.Success)
                return 0;
        }
    }

    private bool Answer(criu_resp resp)
    {
        try
        {
            channel.Send(resp);
            return true;
        }
        catch (SyscallException)
        {
            return false;
        }
    }

    private criu_resp Handle(criu_req req)
    {
        try
        {
            return req.Type switch
            {
                criu_req_type.Version => Version(),
                criu_req_type.FeatureCheck => FeatureCheck(req.Features),
                criu_req_type.Check => Check(),
                criu_req_type.Dump => Dump(req.Opts),
                criu_req_type.Restore => Restore(req.Opts),
                criu_req_type.WaitPid => WaitPid(req),
                criu_req_type.PreDump or criu_req_type.SinglePreDump => PreDump(req.Type, req.Opts),
                criu_req_type.PageServer or criu_req_type.PageServerChld =>
                    throw new RpcRequestException($"{req.Type} is not supported by crisp yet: there is no page server"),
                criu_req_type.CpuinfoDump or criu_req_type.CpuinfoCheck =>
                    throw new RpcRequestException($"{req.Type} is not supported by crisp yet: crisp writes no cpuinfo image"),
                criu_req_type.Notify =>
                    throw new RpcRequestException("NOTIFY is an answer to crisp's notification, and none is pending"),
                _ => throw new RpcRequestException($"unknown request type {(int)req.Type}"),
            };
        }
        catch (Exception e)
        {
            return Failure(Enum.IsDefined(req.Type) ? req.Type : criu_req_type.Empty, e);
        }
    }

    /// <summary>As a CRIU of <see cref="CriuCompat"/>'s version without a git id, so version gates (go-criu's
    /// major*10000 + minor*100) pass; the name says who answered.</summary>
    private static criu_resp Version() => new()
    {
        Type = criu_req_type.Version,
        Success = true,
        Version = new criu_version { MajorNumber = CriuCompat.Major, MinorNumber = CriuCompat.Minor, Name = CriuCompat.Name },
    };

    /// <summary>What crisp itself can do, asked feature by feature (a feature not asked about is answered false, as
    /// CRIU does): memory tracking and lazy pages need crisp's pre-dump and lazy restore as well as the kernel's
    /// support, and crisp keeps no pidfd store.</summary>
    private static criu_resp FeatureCheck(criu_features? asked)
    {
        asked ??= new criu_features();
        return new criu_resp
        {
            Type = criu_req_type.FeatureCheck,
            Success = true,
            Features = new criu_features
            {
                MemTrack = asked.MemTrack && CrispCan("track-mem", "mem_dirty_track"),
                LazyPages = asked.LazyPages && CrispCan("lazy-pages", "lazy_pages"),
                PidfdStore = false,
            },
        };
    }

    private static bool CrispCan(string option, string kernelFeature) =>
        CriuOptions.All.First(o => o.Long == option).Supported
        && Crisp.Check.KernelFeatures.Find(kernelFeature) is { } probe && Crisp.Check.FeatureCheck.Run(probe).Result.Ok;

    /// <summary>`criu check`: every required kernel feature; the first missing one is the error.</summary>
    private static criu_resp Check()
    {
        var report = new StringWriter();
        if (Crisp.Check.FeatureCheck.RunAll(Crisp.Check.KernelFeatures.All, report) != 0)
        {
            string first = report.ToString().Split('\n').SkipWhile(l => !l.StartsWith("Missing required features:"))
                .Skip(1).FirstOrDefault()?.Trim() ?? "a required kernel feature is missing";
            throw new CrispException($"check failed: {first}");
        }
        return new criu_resp { Type = criu_req_type.Check, Success = true };
    }

    private criu_resp Dump(criu_opts? opts)
    {
        using var request = RpcRequest.Open(channel, opts, criu_req_type.Dump, standalone, notifyTimeout);
        request.Run(DumpCommand.Run);
        return new criu_resp { Type = criu_req_type.Dump, Success = true, Dump = new criu_dump_resp { Restored = false } };
    }

    /// <summary>PRE_DUMP (runc checkpoint --pre-dump): the tree's memory copied while it runs on, dirty tracking armed
    /// for the next dump of the chain (parent_img).</summary>
    private criu_resp PreDump(criu_req_type type, criu_opts? opts)
    {
        using var request = RpcRequest.Open(channel, opts, type, standalone, notifyTimeout);
        request.Run(DumpCommand.RunPreDump);
        return new criu_resp { Type = type, Success = true };
    }

    private criu_resp Restore(criu_opts? opts)
    {
        using var request = RpcRequest.Open(channel, opts, criu_req_type.Restore, standalone, notifyTimeout);
        int pid = request.Run(RestoreCommand.Run);
        return new criu_resp { Type = criu_req_type.Restore, Success = true, Restore = new criu_restore_resp { Pid = pid } };
    }

    /// <summary>WAIT_PID: waits for a child of crisp's (a tree restored without rst_sibling) and returns its raw
    /// wait status, as CRIU's handle_wait_pid.</summary>
    private static criu_resp WaitPid(criu_req req)
    {
        if (!req.HasPid)
            throw new RpcRequestException("WAIT_PID needs criu_req.pid");
        Wait.WaitPid((int)req.Pid, out var status, Wait.WALL);
        return new criu_resp { Type = criu_req_type.WaitPid, Success = true, Status = status.Raw };
    }

    /// <summary>success=false with the error's errno and its message as one line (CRIU: the first error logged).</summary>
    public static criu_resp Failure(criu_req_type type, Exception e)
    {
        int errno = e switch
        {
            CrispException c => c.Errno,
            SyscallException s => s.Errno,
            UsageException => RpcRequestException.EBADRQC,
            _ => Errnos.EINVAL,
        };
        bool expected = e is CrispException or SyscallException or UsageException or IOException or UnauthorizedAccessException;
        string message = expected ? e.Message : $"internal error: {e.GetType().Name}: {e.Message}";
        var resp = new criu_resp { Type = type, Success = false, CrErrno = errno, CrErrmsg = OneLine(message) };
        if (type == criu_req_type.Dump)
            resp.Dump = new criu_dump_resp { Restored = false };
        if (type == criu_req_type.Restore)
            resp.Restore = new criu_restore_resp { Pid = -1 };
        return resp;
    }

    private static string OneLine(string message) =>
        string.Join(' ', message.Split(['\r', '\n'], StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));
}
