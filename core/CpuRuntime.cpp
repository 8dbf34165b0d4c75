#include "core/CpuRuntime.h"

#include <malloc.h>
#include <unistd.h>

#include <cstdlib>

namespace studio {

namespace {

bool isSet(const char* name)
{
    const char* value = std::getenv(name);
    return value != nullptr && *value != '\0';
}

void preferPassiveOpenMpThreads(char** argv)
{
    if (isSet("OMP_WAIT_POLICY") || argv == nullptr || argv[0] == nullptr) {
        return;
    }
    setenv("OMP_WAIT_POLICY", "passive", 1);
    execv("/proc/self/exe", argv);
    // Only reached when the exec failed: carry on with libgomp's default (active) waiting.
}

void keepFreedMemoryInTheHeap()
{
    if (isSet("MALLOC_MMAP_MAX_")) {
        return;
    }
    mallopt(M_MMAP_MAX, 0);
    // Never give the top of the heap back (-1 converts to the largest size): the next step
    // needs the same amount again.
    mallopt(M_TRIM_THRESHOLD, -1);
}

} // namespace

void configureCpuRuntime(char** argv)
{
    if (isSet("HNSTUDIO_DEFAULT_RUNTIME")) {
        return;
    }
    preferPassiveOpenMpThreads(argv);
    keepFreedMemoryInTheHeap();
}

} // namespace studio
