// Writes an SD1.5-shaped single-file checkpoint with random F16 weights, for the load benchmark
// and for trying the loaders at full size without downloading a model:
//
//     bench_make_sd15_checkpoint OUT.safetensors [--seed N]
//
// Checks the parameter counts against the spec and prints the tensor count and size.

#include "Sd15Checkpoint.h"

#include "core/Error.h"

#include <QElapsedTimer>
#include <QFileInfo>

#include <cstdio>
#include <cstdlib>
#include <cstring>

using namespace studio;

namespace {

struct Options
{
    QString outPath;
    uint64_t seed = 1;
};

void printUsage(const char* program)
{
    std::fprintf(stderr, "usage: %s OUT.safetensors [--seed N]\n", program);
}

bool parseOptions(int argc, char** argv, Options& options)
{
    for (int i = 1; i < argc; ++i) {
        if (std::strcmp(argv[i], "--seed") == 0 && i + 1 < argc) {
            options.seed = std::strtoull(argv[++i], nullptr, 10);
        } else if (argv[i][0] != '-' && options.outPath.isEmpty()) {
            options.outPath = QString::fromLocal8Bit(argv[i]);
        } else {
            return false;
        }
    }
    return !options.outPath.isEmpty();
}

double toMiB(int64_t bytes)
{
    return static_cast<double>(bytes) / (1024.0 * 1024.0);
}

void printSummary(const bench::Sd15CheckpointSummary& summary, const QString& path)
{
    std::printf("%-14s %8s %14s %14s %10s\n", "component", "tensors", "parameters", "spec",
                "F16 MiB");
    for (const bench::ComponentSummary& component : summary.components) {
        std::printf("%-14s %8lld %14lld %14lld %10.1f  %s\n", component.name,
                    static_cast<long long>(component.tensors),
                    static_cast<long long>(component.parameters),
                    static_cast<long long>(component.expectedParameters), toMiB(component.f16Bytes),
                    component.countMatches() ? "OK" : "MISMATCH");
    }
    const qint64 fileBytes = QFileInfo(path).size();
    std::printf("total: %lld tensors, %lld data bytes (%.1f MiB, %.2f GB); file %lld bytes\n",
                static_cast<long long>(summary.tensors), static_cast<long long>(summary.dataBytes),
                toMiB(summary.dataBytes), static_cast<double>(summary.dataBytes) / 1e9,
                static_cast<long long>(fileBytes));
}

} // namespace

int main(int argc, char** argv)
{
    Options options;
    if (!parseOptions(argc, argv, options)) {
        printUsage(argv[0]);
        return 2;
    }

    try {
        QElapsedTimer timer;
        timer.start();
        const bench::Sd15CheckpointSummary summary =
            bench::writeSd15Checkpoint(options.outPath, options.seed);
        std::printf("wrote %s in %.1f s (seed %llu)\n", qPrintable(options.outPath),
                    timer.elapsed() / 1000.0, static_cast<unsigned long long>(options.seed));
        printSummary(summary, options.outPath);
        if (!summary.countsMatch()) {
            std::fprintf(stderr, "parameter counts differ from the spec\n");
            return 1;
        }
    } catch (const Error& error) {
        std::fprintf(stderr, "error: %s\n", error.what());
        return 1;
    }
    return 0;
}
