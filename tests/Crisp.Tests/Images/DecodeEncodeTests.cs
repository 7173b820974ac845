using System.Text;
using Crisp.Images;
using Crisp.Images.Proto;
using Crisp.Images.Show;
using Crisp.Tests.Support;
using Google.Protobuf;

namespace Crisp.Tests.Images;

/// <summary>`crisp decode` then `crisp encode` gives every image back byte for byte, plain and pretty, payloads
/// included; images written by CRIU's own code (Debian's crit encode) too; bad JSON is one line.</summary>
public class DecodeEncodeTests
{
    /// <summary>The samples plus the kinds that carry payloads or need crit's special conversions.</summary>
    internal static IEnumerable<Sample> Samples() =>
    [
        .. SampleImages.All(),
        new(ImageFile.Inventory, [new inventory_entry { ImgVersion = 2, Lsmtype = lsmtype.NoLsm, PluginsEntry = new plugins_entry { Plugins = { "cuda_plugin" } } }]),
        new(ImageFile.SkQueues, [new sk_packet_entry { IdFor = 7, Length = 5 }, new sk_packet_entry { IdFor = 7, Length = 0 }], [Encoding.ASCII.GetBytes("hello"), []]),
        new(ImageFile.TcpStream(0x1f2e), [new tcp_stream_entry { InqLen = 3, InqSeq = 1, OutqLen = 4, OutqSeq = 2, OptMask = 7, SndWscale = 7, MssClamp = 1460 }],
            [Encoding.ASCII.GetBytes("in!out!")]),
        new(ImageFile.GhostFile(3), [new ghost_file_entry { Uid = 0, Gid = 0, Mode = 0x81a4, Dev = 0x800001, Ino = 12, Size = 6 }], [Encoding.ASCII.GetBytes("ghost\n")]),
        new(ImageFile.Files,
        [
            new file_entry { Type = fd_types.Inetsk, Id = 1, Isk = Inet(2, [0x0100007f], [0x0200007f]) },
            new file_entry { Type = fd_types.Inetsk, Id = 2, Isk = Inet(10, [0, 0, 0, 0x01000000], [0x000080fe, 0, 0x00ff0000, 0x02000000]) },
            new file_entry
            {
                Type = fd_types.Unixsk, Id = 3, Usk = new unix_sk_entry
                {
                    Id = 3, Ino = 99, Type = 2, State = 7, Flags = 2, Uflags = 0, Backlog = 0, Peer = 0, Fown = SampleImages.Fown(), Opts = Opts(),
                    Name = ByteString.CopyFrom([0, .. "abstract=name\n"u8, 0xff]),
                },
            },
        ]),
    ];

    private static sk_opts_entry Opts() => new() { SoSndbuf = 212992, SoRcvbuf = 212992, SoSndTmoSec = 0, SoSndTmoUsec = 0, SoRcvTmoSec = 0, SoRcvTmoUsec = 0 };

    private static inet_sk_entry Inet(uint family, uint[] src, uint[] dst) => new()
    {
        Id = 1, Ino = 5, Family = family, Type = 1, Proto = 6, State = 1, SrcPort = 8080, DstPort = 40000, Flags = 2, Backlog = 0,
        Fown = SampleImages.Fown(), Opts = Opts(), SrcAddr = { src }, DstAddr = { dst },
    };

    private static string WriteSample(TempImageDir tmp, Sample s)
    {
        if (s.File.Kind == ImageKind.TcpStream || s.File.Kind == ImageKind.GhostFile)
        {
            // One entry, then its payload(s) raw.
            using var w = tmp.Dir.CreateWriter(s.File);
            w.Write(s.Entries[0], s.Extras![0]);
        }
        else
        {
            SampleImages.Write(tmp.Dir, s);
        }
        return tmp.Dir.PathOf(s.File);
    }

    [Fact]
    public void EverySampleComesBackByteForBytePlainAndPretty()
    {
        using var tmp = new TempImageDir();
        int n = 0;
        foreach (var s in Samples())
        {
            string path = WriteSample(tmp, s);
            byte[] original = File.ReadAllBytes(path);
            foreach (bool pretty in new[] { false, true })
                Assert.True(original.AsSpan().SequenceEqual(ImageEncoder.Encode(ImageJson.Render(path, pretty), path)), $"{s.File} (pretty {pretty})");
            n++;
        }
        Assert.True(n >= 25);
    }

    [Fact]
    public void PrettyShowsCurrentCritsConversions()
    {
        using var tmp = new TempImageDir();
        var samples = Samples().ToList();
        string inventory = OneLine(ImageJson.Render(WriteSample(tmp, samples.First(s => s.Entries[0] is inventory_entry { PluginsEntry: not null })), pretty: true));
        Assert.Contains("\"plugins_entry\": { \"plugins\": [ \"cuda_plugin\" ] }", inventory);
        string files = OneLine(ImageJson.Render(WriteSample(tmp, samples.Last(s => s.File == ImageFile.Files)), pretty: true));
        Assert.Contains("\"src_addr\": [ \"127.0.0.1\" ]", files);
        Assert.Contains("\"dst_addr\": [ \"fe80::ff00:0:2\" ]", files);
        Assert.Contains("\"src_addr\": [ \"::1\" ]", files);
        Assert.Contains("\"family\": \"INET6\"", files);
        Assert.Contains("\"name\": \"=00abstract=3Dname\\n=FF\"", files);
        string plain = ImageJson.Render(tmp.Dir.PathOf(ImageFile.Files), pretty: false);
        Assert.DoesNotContain("\n", plain);
        Assert.Contains("\"src_addr\": [16777343]", plain);
    }

    private static string OneLine(string json) => System.Text.RegularExpressions.Regex.Replace(json, @"\s+", " ");

    /// <summary>Images written by CRIU's code: Debian's crit encodes crisp's plain JSON of each sample (it drops
    /// fields newer than 3.17); crisp's decode → encode of that file gives it back byte for byte.</summary>
    [Fact]
    public void ImagesWrittenByCritComeBackByteForByte()
    {
        using var tmp = new TempImageDir();
        foreach (var s in Samples())
        {
            string path = WriteSample(tmp, s);
            string json = tmp.File("crisp.json"), criu = tmp.File("criu-" + s.File.FileName);
            File.WriteAllText(json, ImageJson.Render(path, pretty: false));
            Crit.Encode(json, criu);
            byte[] written = File.ReadAllBytes(criu);
            Assert.True(written.AsSpan().SequenceEqual(ImageEncoder.Encode(ImageJson.Render(criu, pretty: true), criu)), $"{s.File}");
            Assert.True(written.AsSpan().SequenceEqual(ImageEncoder.Encode(ImageJson.Render(criu, pretty: false), criu)), $"{s.File}");
        }
    }

    [Fact]
    public void CliDecodeEncodeRoundTripAndStdio()
    {
        using var tmp = new TempImageDir();
        string path = WriteSample(tmp, SampleImages.PipesData());
        string json = tmp.File("p.json"), back = tmp.File("back.img");
        var d = CrispCli.Run("decode", "-i", path, "-o", json, "--pretty");
        Assert.True(d.ExitCode == 0, d.Stderr);
        Assert.Equal("", d.Stderr);
        Assert.Equal(ImageJson.Render(path, pretty: true), File.ReadAllText(json));
        var e = CrispCli.Run("encode", "-i", json, "-o", back);
        Assert.True(e.ExitCode == 0, e.Stderr);
        Assert.Equal(File.ReadAllBytes(path), File.ReadAllBytes(back));

        var plain = CrispCli.Run("decode", "-i", path);
        Assert.Equal(ImageJson.Render(path, pretty: false) + "\n", plain.Stdout);
        var viaStdin = CrispCli.RunProcess("sh", TimeSpan.FromSeconds(60), null, "-c",
            $"{CrispCli.Exe} decode < {path} | {CrispCli.Exe} encode | cmp - {path}");
        Assert.True(viaStdin.ExitCode == 0, viaStdin.Stdout + viaStdin.Stderr);
    }

    [Theory]
    [InlineData("{\"magic\": \"CORE\"", "not JSON")]
    [InlineData("{\"magic\": \"NOPE\", \"entries\": []}", "unknown magic \"NOPE\"")]
    [InlineData("{\"magic\": \"FS\", \"entries\": [{\"cwd_id\": 1, \"root_id\": 2, \"colour\": 3}]}", "entries[0].colour: no such field in fs_entry")]
    [InlineData("{\"magic\": \"FS\", \"entries\": [{\"cwd_id\": -1, \"root_id\": 2}]}", "entries[0].cwd_id: -1 does not fit a uint32")]
    [InlineData("{\"magic\": \"PIPES_DATA\", \"entries\": [{\"pipe_id\": 1, \"bytes\": 4, \"extra\": \"YWI=\\n\"}]}", "the payload has 2 bytes but bytes says 4")]
    [InlineData("{\"magic\": \"FDINFO\", \"entries\": [{\"id\": 1, \"flags\": 0, \"type\": \"SPOON\", \"fd\": 0}]}", "'SPOON' is not one of fd_types's names")]
    public void BadJsonIsOneLineAndWritesNothing(string json, string expected)
    {
        using var tmp = new TempImageDir();
        string input = tmp.File("bad.json"), output = tmp.File("out.img");
        File.WriteAllText(input, json);
        var r = CrispCli.Run("encode", "-i", input, "-o", output);
        Assert.Equal(1, r.ExitCode);
        Integration.FailureSafetyTests.AssertOneLine(r.Stderr, expected);
        Assert.False(File.Exists(output));
    }

    [Fact]
    public void DecodeOfARawPagesImageIsOneLine()
    {
        using var tmp = new TempImageDir();
        string pages = tmp.File("pages-1.img");
        File.WriteAllBytes(pages, new byte[4096]);
        var r = CrispCli.Run("decode", "-i", pages);
        Assert.Equal(1, r.ExitCode);
        Integration.FailureSafetyTests.AssertOneLine(r.Stderr, "raw image such as pages-N.img");
    }
}
