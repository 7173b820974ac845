namespace Crisp.Resources.Core;

/// <summary>task_core_entry.task_state values (CRIU's compel task states).</summary>
public static class TaskStates
{
    public const uint Alive = 1, Dead = 2, Stopped = 3, Zombie = 6;
}
