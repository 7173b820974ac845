using Crisp.Cli.CommandLine;
using Crisp.Images.Show;

namespace Crisp.Cli.Commands;

/// <summary>`crisp decode [-i IMG] [-o JSON] [--pretty]`, as `crit decode`: stdin and stdout by default; the JSON
/// written to a file has no final newline, to stdout one (crit's way). The JSON is encoded back at once and a
/// warning says so when that would not give the same bytes (fields crisp's schemas do not know).</summary>
public static class DecodeCommand
{
    public static int Run(CommandContext ctx)
    {
        if (ctx.Operands.Count != 0)
            throw new UsageException("decode takes its image with -i IMG (or on stdin), not as an operand");
        string? output = ctx.Args.Get("out") ?? ctx.Args.Get("log-file");
        bool pretty = ctx.Args.Has("pretty");
        using var input = ImageInput.Open(ctx.Args.Get("in"));
        var key = ctx.ReadKey();
        string json = ImageJson.Render(input.Path, pretty, key);
        // An encrypted image is compared by its plaintext (encode writes plain images).
        if (key is null && !ImageEncoder.Encode(json, input.Name).AsSpan().SequenceEqual(File.ReadAllBytes(input.Path)))
            Console.Error.WriteLine($"crisp: warning: {input.Name}: encoding this JSON would not give the same bytes back " +
                "(fields crisp's schemas do not know, or a non-canonical encoding); edit it with care");
        if (output is null)
        {
            ctx.Out.Write(json + "\n");
            ctx.Out.Flush();
        }
        else
        {
            File.WriteAllText(output, json);
        }
        return 0;
    }
}
