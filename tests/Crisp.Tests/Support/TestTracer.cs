using Crisp.Compel;

namespace Crisp.Tests.Support;

/// <summary>The tracer the Compel tests share (crisp itself has none process-wide: each dump, restore and
/// probe child owns its own). It lives until the test process exits.</summary>
internal static class TestTracer
{
    public static Tracer Shared { get; } = new("test-tracer");
}
