// libFuzzer entry point (clang -fsanitize=fuzzer,address); the target is chosen at build time
// with -DHNSTUDIO_FUZZ_TARGET=unpicklerTarget (or torchArchiveTarget, safeTensorsTarget).

#include "FuzzTargets.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size)
{
    return studio::fuzz::HNSTUDIO_FUZZ_TARGET(data, size);
}
