#pragma once

// Fuzz targets for the file parsers, in libFuzzer's shape (bytes in, 0 out). Each feeds the
// bytes to one parser and accepts a studio::Error as the correct outcome for bad input; any
// other exception escapes, and a crash or memory error is caught by the sanitizers.

#include <cstddef>
#include <cstdint>

namespace studio::fuzz {

int unpicklerTarget(const uint8_t* data, size_t size);
int torchArchiveTarget(const uint8_t* data, size_t size);
int safeTensorsTarget(const uint8_t* data, size_t size);

} // namespace studio::fuzz
