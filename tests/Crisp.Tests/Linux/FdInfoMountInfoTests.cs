using Crisp.Linux;
using Crisp.Linux.Proc;

namespace Crisp.Tests.Linux;

public class FdInfoMountInfoTests
{
    [Fact]
    public void ParsesEventfdInfo()
    {
        var info = FdInfo.Parse("pos:\t0\nflags:\t02000002\nmnt_id:\t17\nino:\t1039\neventfd-count:                5\neventfd-id: 1\neventfd-semaphore: 0\n");
        Assert.Equal(0, info.Pos);
        Assert.Equal(FileIo.O_RDWR | FileIo.O_CLOEXEC, info.Flags);
        Assert.Equal(17, info.MntId);
        Assert.Equal(1039UL, info.Ino);
        Assert.Equal("5", info.Get("eventfd-count"));
        Assert.Equal("0", info.Get("eventfd-semaphore"));
        Assert.Equal(7, info.Lines.Count);
        Assert.Equal("eventfd-id: 1", info.Lines[5]);
    }

    [Fact]
    public void KeepsEpollTargetsInOrder()
    {
        var info = FdInfo.Parse(
            "pos:\t0\nflags:\t02\nmnt_id:\t17\nino:\t1039\n" +
            "tfd:        3 events:       19 data:                3  pos:0 ino:40f sdev:10\n" +
            "tfd:        7 events:       1 data:       ffffffffffffffff  pos:12 ino:abc sdev:8\n");
        var tfds = info.GetAll("tfd").ToList();
        Assert.Equal(2, tfds.Count);
        var pairs = FdInfo.ParsePairs("tfd: " + tfds[1]);
        Assert.Equal(new KeyValuePair<string, string>("tfd", "7"), pairs[0]);
        Assert.Equal("1", pairs.Single(p => p.Key == "events").Value);
        Assert.Equal("ffffffffffffffff", pairs.Single(p => p.Key == "data").Value);
        Assert.Equal("12", pairs.Single(p => p.Key == "pos").Value);
        Assert.Equal("abc", pairs.Single(p => p.Key == "ino").Value);
    }

    [Fact]
    public void KeepsInotifySignalfdAndTimerfdLines()
    {
        var info = FdInfo.Parse(
            "pos:\t0\nflags:\t04000\nmnt_id:\t15\nino:\t7\n" +
            "inotify wd:1 ino:2 sdev:800011 mask:fce ignored_mask:0 fhandle-bytes:8 fhandle-type:1 f_handle:0200000000000000\n" +
            "sigmask:\t0000000000004000\n" +
            "clockid: 1\nticks: 0\nsettime flags: 01\nit_value: (0, 999)\nit_interval: (1, 0)\n");
        Assert.Equal(FileIo.O_NONBLOCK, info.Flags);
        var wd = FdInfo.ParsePairs(info.Get("inotify wd") is { } v ? "wd:" + v : "");
        Assert.Equal("1 ino:2 sdev:800011 mask:fce ignored_mask:0 fhandle-bytes:8 fhandle-type:1 f_handle:0200000000000000", info.Get("inotify wd"));
        Assert.Equal("fce", wd.Single(p => p.Key == "mask").Value);
        Assert.Equal("0000000000004000", info.Get("sigmask"));
        Assert.Equal("01", info.Get("settime flags"));
        Assert.Equal("(0, 999)", info.Get("it_value"));
        Assert.Equal(11, info.Entries.Count);
    }

    [Fact]
    public void ReadsOwnMemfdInfo()
    {
        using var fd = Memfd.Create("crisp-fdinfo");
        FileIo.WriteExactly(fd.Fd, "hello"u8);
        var info = FdInfo.Read(Environment.ProcessId, fd.Fd);
        Assert.Equal(5, info.Pos);
        Assert.Equal(FileIo.O_RDWR, info.Flags & FileIo.O_ACCMODE);
        Assert.NotEqual(0, info.Flags & FileIo.O_CLOEXEC);
        Assert.NotNull(info.Get("mnt_id")); // 0 for memfd: its internal mount is not in mountinfo
        Assert.True(info.Ino > 0);
    }

    private const string MountSample =
        "36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue\n" +
        "21 26 0:20 / /proc rw,relatime shared:5 master:7 - proc proc rw\n" +
        "50 26 8:17 /dir\\040with\\011tab /mnt/a\\040b\\134c rw - fuse.my\\040fs my\\040source rw,user_id=0\n" +
        "60 26 0:44 / /run rw - tmpfs tmpfs rw\n";

    [Fact]
    public void ParsesMountInfo()
    {
        var m = MountInfo.Parse(MountSample);
        Assert.Equal(4, m.Count);
        Assert.Equal(36, m[0].MountId);
        Assert.Equal(35, m[0].ParentId);
        Assert.Equal(98u, m[0].Major);
        Assert.Equal(0u, m[0].Minor);
        Assert.Equal("/mnt1", m[0].Root);
        Assert.Equal("/mnt2", m[0].MountPoint);
        Assert.Equal("rw,noatime", m[0].Options);
        Assert.Equal(["master:1"], m[0].OptionalFields);
        Assert.Equal(1, m[0].MasterGroup);
        Assert.Equal("ext3", m[0].FsType);
        Assert.Equal("/dev/root", m[0].Source);
        Assert.Equal("rw,errors=continue", m[0].SuperOptions);

        Assert.Equal(5, m[1].SharedGroup);
        Assert.Equal(7, m[1].MasterGroup);

        Assert.Equal("/dir with\ttab", m[2].Root);
        Assert.Equal("/mnt/a b\\c", m[2].MountPoint);
        Assert.Equal("fuse.my fs", m[2].FsType);
        Assert.Equal("my source", m[2].Source);
        Assert.Empty(m[2].OptionalFields);
        Assert.Equal(0, m[2].SharedGroup);
    }

    [Fact]
    public void ReadsOwnMountInfo()
    {
        var m = MountInfo.Read(Environment.ProcessId);
        Assert.Contains(m, e => e.MountPoint == "/proc" && e.FsType == "proc");
        Assert.Contains(m, e => e.MountPoint == "/");
    }
}
