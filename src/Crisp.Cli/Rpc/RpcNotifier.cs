using Crisp.Rpc.Proto;

namespace Crisp.Cli.Rpc;

/// <summary>criu_opts.notify_scripts: at each action point crisp sends a NOTIFY response naming the script (with the
/// root's pid where CRIU sends it) and waits for the client's NOTIFY request with notify_success (send_criu_rpc_script).
/// CRIU waits for ever; crisp gives up after a time (CRISP_RPC_NOTIFY_TIMEOUT seconds, default 300), so a client
/// that stopped answering cannot keep a tree frozen.</summary>
public sealed class RpcNotifier(RpcChannel channel, TimeSpan timeout) : Crisp.Scripts.IActionNotifier
{
    public string? Notify(string action, int? initPid) => Send(action, initPid, -1);

    public string? NotifyWithFd(string action, int fd) => Send(action, null, fd);

    private string? Send(string action, int? initPid, int passFd)
    {
        var notify = new criu_notify { Script = action };
        if (initPid is int pid)
            notify.Pid = pid;
        criu_req? ack;
        try
        {
            channel.Send(new criu_resp { Type = criu_req_type.Notify, Success = true, Notify = notify }, passFd);
            ack = channel.Receive(timeout);
        }
        catch (Exception e) when (e is TimeoutException or CrispException or Linux.SyscallException)
        {
            return e.Message;
        }
        if (ack is null)
            return "the RPC client closed the connection instead of answering";
        if (ack.Type != criu_req_type.Notify)
            return $"the RPC client answered with a {ack.Type} request instead of NOTIFY";
        return ack.NotifySuccess ? null : "the RPC client reported a script error";
    }
}
