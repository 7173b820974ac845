using Crisp.Cli.CommandLine;
using Crisp.Images.Show;

namespace Crisp.Cli.Commands;

/// <summary>`crisp encode [-i JSON] [-o IMG]`, as `crit encode`: stdin and stdout by default. The image is built
/// whole before anything is written, so bad JSON leaves the output file as it was.</summary>
public static class EncodeCommand
{
    public static int Run(CommandContext ctx)
    {
        if (ctx.Operands.Count != 0)
            throw new UsageException("encode takes its JSON with -i FILE (or on stdin), not as an operand");
        string? input = ctx.Args.Get("in");
        string? output = ctx.Args.Get("out") ?? ctx.Args.Get("log-file");
        string json;
        if (input is null)
        {
            using var stdin = new StreamReader(Console.OpenStandardInput());
            json = stdin.ReadToEnd();
        }
        else
        {
            json = File.Exists(input) ? File.ReadAllText(input) : throw new CrispException($"{input}: no such file");
        }
        byte[] image = ImageEncoder.Encode(json, input ?? "stdin");
        if (output is null)
        {
            using var stdout = Console.OpenStandardOutput();
            stdout.Write(image);
        }
        else
        {
            string tmp = output + ".crisp-tmp";
            File.WriteAllBytes(tmp, image);
            File.Move(tmp, output, overwrite: true);
        }
        return 0;
    }
}
