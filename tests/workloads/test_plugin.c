/* A CRIU plugin for crisp's plugin tests, built with `gcc -shared -fPIC`: a .so exporting CR_PLUGIN_DESC with
 * CRIU's ABI (criu-plugin.h, version 0.2.0). It records every hook crisp calls, one line each, in the file
 * CRISP_TEST_PLUGIN_LOG names (nothing when unset), and at dump says that the checkpoint needs it
 * (add_inventory_plugin, as CRIU's device plugins do) and leaves a file in the images directory
 * (criu_get_image_dir), which its restore init reads back. CRISP_TEST_PLUGIN_FAIL=HOOK makes that hook fail
 * with -EIO. -DNO_DESC builds a library without the descriptor, -DABI_VERSION=N one built for another ABI,
 * -DNO_API one that calls nothing of its host (loadable where crisp's exports are absent: the test host), which
 * then takes its log file and the hook to fail from -DLOG_FILE=PATH and -DFAIL_HOOK=NAME (a process's C environment
 * is not the test host's to change). */
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { DUMP_UNIX_SK, RESTORE_UNIX_SK, DUMP_EXT_FILE, RESTORE_EXT_FILE, DUMP_EXT_MOUNT, RESTORE_EXT_MOUNT,
       DUMP_EXT_LINK, HANDLE_DEVICE_VMA, UPDATE_VMA_MAP, RESUME_DEVICES_LATE, PAUSE_DEVICES, CHECKPOINT_DEVICES,
       POST_FORKING, RESTORE_INIT, DUMP_DEVICES_LATE, HOOK_MAX };
enum { STAGE_DUMP, STAGE_PRE_DUMP, STAGE_RESTORE };

struct plugin_desc {
    const char *name;
    int (*init)(int stage);
    void (*exit)(int stage, int ret);
    unsigned int version;
    unsigned int max_hooks;
    void *hooks[HOOK_MAX];
};

/* Exported by the binary that loads the plugin (CRIU, or the native crisp). */
extern int add_inventory_plugin(const char *name);
extern int criu_get_image_dir(void);

#ifndef ABI_VERSION
#define ABI_VERSION ((0 << 16) + (2 << 8) + 0)
#endif
#define STR(x) #x
#define XSTR(x) STR(x)
#define STATE_FILE "crisp-test-plugin.state"
#define STATE "saved by the test plugin\n"

static const char *stage_name(int stage)
{
    return stage == STAGE_DUMP ? "Dump" : stage == STAGE_PRE_DUMP ? "PreDump" : "Restore";
}

static const char *log_file(void)
{
    const char *log = getenv("CRISP_TEST_PLUGIN_LOG");
#ifdef LOG_FILE
    if (!log)
        log = XSTR(LOG_FILE);
#endif
    return log;
}

static const char *fail_hook(void)
{
#ifdef FAIL_HOOK
    return XSTR(FAIL_HOOK);
#else
    return getenv("CRISP_TEST_PLUGIN_FAIL");
#endif
}

static void record(const char *fmt, ...)
{
    const char *log = log_file();
    va_list ap;
    FILE *f;
    if (!log || !*log || !(f = fopen(log, "a")))
        return;
    va_start(ap, fmt);
    vfprintf(f, fmt, ap);
    va_end(ap);
    fputc('\n', f);
    fclose(f);
}

/* Records the call; answers -ENOTSUP ("not mine") so the other plugins are asked as well. */
static int hook(const char *name, const char *fmt, int arg)
{
    const char *fail = fail_hook();
    record(fmt, arg);
    return fail && !strcmp(fail, name) ? -EIO : -ENOTSUP;
}

static int pause_devices(int pid) { return hook("PauseDevices", "PauseDevices %d", pid); }
static int checkpoint_devices(int pid) { return hook("CheckpointDevices", "CheckpointDevices %d", pid); }
static int dump_devices_late(int id) { return hook("DumpDevicesLate", "DumpDevicesLate %d", id); }
static int restore_init(void) { return hook("RestoreInit", "RestoreInit", 0); }
static int post_forking(void) { return hook("PostForking", "PostForking", 0); }
static int resume_devices_late(int pid) { return hook("ResumeDevicesLate", "ResumeDevicesLate %d", pid); }

static int init(int stage);
static void fini(int stage, int ret);

#ifdef NO_DESC
#define DESC test_plugin_desc
#else
#define DESC CR_PLUGIN_DESC
#endif

struct plugin_desc DESC = {
    .name = "crisp_test_plugin",
    .init = init,
    .exit = fini,
    .version = ABI_VERSION,
    .max_hooks = HOOK_MAX,
    .hooks = {
        [PAUSE_DEVICES] = pause_devices,
        [CHECKPOINT_DEVICES] = checkpoint_devices,
        [DUMP_DEVICES_LATE] = dump_devices_late,
        [RESTORE_INIT] = restore_init,
        [POST_FORKING] = post_forking,
        [RESUME_DEVICES_LATE] = resume_devices_late,
    },
};

#ifdef NO_API
static int plugin_state(int stage)
{
    (void)stage;
    return 0;
}
#else
/* Dump: the checkpoint needs this plugin, and its state goes into the images directory. Restore: that state must
 * be there (the restore does not go on without it). */
static int plugin_state(int stage)
{
    char buf[64] = "";
    int fd;

    if (stage == STAGE_DUMP) {
        if (add_inventory_plugin(DESC.name))
            return -1;
        fd = openat(criu_get_image_dir(), STATE_FILE, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd < 0 || write(fd, STATE, strlen(STATE)) != (ssize_t)strlen(STATE))
            return -1;
        close(fd);
    } else if (stage == STAGE_RESTORE) {
        fd = openat(criu_get_image_dir(), STATE_FILE, O_RDONLY | O_CLOEXEC);
        if (fd < 0 || read(fd, buf, sizeof(buf) - 1) < 0 || strcmp(buf, STATE))
            return -1;
        close(fd);
    }
    return 0;
}
#endif

static int init(int stage)
{
    const char *log = log_file();

    if (!log || !*log)
        return 0;   /* loaded, but nothing to record */
    record("Init %s", stage_name(stage));
    return plugin_state(stage);
}

static void fini(int stage, int ret)
{
    record("Exit %s %s", stage_name(stage), ret == 0 ? "True" : "False");
}
