#pragma once

// The running process as the kernel reports it (/proc/self), for the benchmarks: memory from
// /proc/self/status, and the executable, to start a measuring child of the same program.

#include "core/Error.h"

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>

#include <unistd.h>

namespace studio::bench {

// A "Field:   1234 kB" line of /proc/self/status (VmRSS, VmHWM, ...) in MiB, or -1 when it is
// missing.
inline double statusMiB(const char* field)
{
    std::ifstream status("/proc/self/status");
    std::string line;
    const size_t length = std::strlen(field);
    while (std::getline(status, line)) {
        if (line.compare(0, length, field) == 0 && line.size() > length && line[length] == ':') {
            return std::atof(line.c_str() + length + 1) / 1024.0;
        }
    }
    return -1.0;
}

// Sets VmHWM back to the current RSS (Linux 4.0+). False when the kernel refuses.
inline bool resetPeakRss()
{
    std::ofstream clearRefs("/proc/self/clear_refs");
    clearRefs << "5";
    clearRefs.flush();
    return clearRefs.good();
}

// The path of the running executable; throws studio::Error when /proc is unreadable.
inline std::string selfExecutable()
{
    char path[4096];
    const ssize_t length = readlink("/proc/self/exe", path, sizeof(path) - 1);
    if (length <= 0) {
        throw Error(QStringLiteral("cannot read /proc/self/exe"));
    }
    return std::string(path, static_cast<size_t>(length));
}

} // namespace studio::bench
