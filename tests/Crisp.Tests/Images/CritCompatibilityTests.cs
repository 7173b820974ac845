using Crisp.Images.Show;

namespace Crisp.Tests.Images;

/// <summary>Debian's crit (CRIU 3.17) must decode what we write, and `crisp show` must print what crit prints.</summary>
public class CritCompatibilityTests
{
    private static void Check(Sample s)
    {
        using var tmp = new TempImageDir();
        SampleImages.Write(tmp.Dir, s);
        string path = tmp.Dir.PathOf(s.File);

        var decoded = Crit.Decode(path);
        Assert.Equal(s.File.Kind.Name, decoded.GetProperty("magic").GetString());
        var entries = decoded.GetProperty("entries");
        Assert.Equal(s.Entries.Count, entries.GetArrayLength());
        for (int i = 0; i < s.Entries.Count; i++)
        {
            CritJsonAssert.Equal(s.Entries[i], entries[i], $"{s.File}[{i}]");
            if (s.Extras is not null)
                Assert.Equal(s.Extras[i], Convert.FromBase64String(entries[i].GetProperty("extra").GetString()!.Replace("\n", "")));
        }

        Crit317.AssertShowEqual(path, ImageJson.Render(path));
    }

    [Fact] public void Inventory() => Check(SampleImages.Inventory());
    [Fact] public void Pstree() => Check(SampleImages.Pstree());
    [Fact] public void CoreWithRegsSeccompSignalsAndRseq() => Check(SampleImages.Core());
    [Fact] public void ThreadCoreWithRseq() => Check(SampleImages.Rseq());
    [Fact] public void Ids() => Check(SampleImages.Ids());
    [Fact] public void MmWithVmas() => Check(SampleImages.Mm());
    [Fact] public void Creds() => Check(SampleImages.Creds());
    [Fact] public void Fs() => Check(SampleImages.Fs());
    [Fact] public void Fdinfo() => Check(SampleImages.Fdinfo());
    [Fact] public void Files() => Check(SampleImages.Files());
    [Fact] public void RegFiles() => Check(SampleImages.RegFiles());
    [Fact] public void Pipes() => Check(SampleImages.Pipes());
    [Fact] public void PipesDataWithPayload() => Check(SampleImages.PipesData());
    [Fact] public void Sigacts() => Check(SampleImages.Sigacts());
    [Fact] public void SeccompWithTwoChainedFilters() => Check(SampleImages.Seccomp());
    [Fact] public void Itimers() => Check(SampleImages.Itimers());
    [Fact] public void PosixTimers() => Check(SampleImages.PosixTimers());
    [Fact] public void TtyFiles() => Check(SampleImages.Tty());
    [Fact] public void TtyInfo() => Check(SampleImages.TtyInfo());
    [Fact] public void TtyData() => Check(SampleImages.TtyData());
    [Fact] public void Rlimit() => Check(SampleImages.Rlimit());
}
