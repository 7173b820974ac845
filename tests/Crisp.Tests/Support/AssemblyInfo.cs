// Tests seize, freeze, kill and restore real processes and pick free PIDs: running them in parallel on a
// 2-core machine makes them race each other for PIDs and CPU. One at a time keeps them deterministic.
[assembly: CollectionBehavior(DisableTestParallelization = true)]
