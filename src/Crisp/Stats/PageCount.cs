using Crisp.Images;

namespace Crisp.Stats;

/// <summary>Pages a checkpoint holds: the PE_PRESENT runs of the tasks' pagemaps and of every shared
/// anonymous object's pagemap-shmem image.</summary>
public static class PageCount
{
    public static long Present(ImageDirectory images, IEnumerable<int> pids)
    {
        long total = 0;
        foreach (int pid in pids)
        {
            if (!images.Exists(ImageFile.Pagemap(pid)))
                continue;
            using var map = images.OpenPagemap(pid);
            total += map.PresentPages;
        }
        foreach (var (_, file) in images.List())
        {
            if (file is { } f && f.Kind == ImageKind.ShmemPagemap)
            {
                using var map = images.OpenPagemap(f);
                total += map.PresentPages;
            }
        }
        return total;
    }
}
