namespace Crisp.Cli;

public static class Program
{
    public static int Main(string[] args)
    {
        Console.WriteLine("crisp: checkpoint/restore in userspace");
        return 0;
    }
}
