/* test_bad_abi.c - a plugin whose descriptor claims plugin ABI 2.0: the loader must refuse it,
 * naming the file and both versions. Everything else about it is well-formed. */
#include "aigw/plugin.h"

static const aigw_plugin desc = {
    .abi_major = 2,
    .abi_minor = 0,
    .struct_size = (uint32_t)sizeof(aigw_plugin),
    .name = "test_bad_abi",
    .version = "2.0.0",
};

AIGW_EXPORT const aigw_plugin *aigw_plugin_entry(const aigw_host *h, char *err, size_t errlen)
{
    (void)h;
    (void)err;
    (void)errlen;
    return &desc;
}
