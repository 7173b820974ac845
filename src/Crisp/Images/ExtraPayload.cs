namespace Crisp.Images;

/// <summary>Raw bytes that follow an entry in some images, the way crit frames them.</summary>
public enum ExtraPayload
{
    None,
    /// <summary>pipes-data / fifo-data: pipe_data_entry.bytes raw bytes follow each entry.</summary>
    PipeData,
    /// <summary>sk-queues: sk_packet_entry.length bytes of one queued message follow each entry.</summary>
    SkQueue,
    /// <summary>tcp-stream: the receive queue (inq_len) then the send queue (outq_len) follow the entry.</summary>
    TcpQueues,
    /// <summary>ghost-file: the file's bytes follow the one ghost_file_entry, raw, to the end of the image.</summary>
    GhostData,
    /// <summary>ipcns-sem: nsems 16-bit values follow each ipc_sem_entry, padded to 8 bytes.</summary>
    IpcSemValues,
    /// <summary>ipcns-msg: qnum (ipc_msg entry + msize bytes padded to 8) pairs follow each ipc_msg_entry.</summary>
    IpcMsgQueue,
    /// <summary>ipcns-shm: without in_pagemaps, size bytes (padded to 4) follow each ipc_shm_entry.</summary>
    IpcShmData,
}
