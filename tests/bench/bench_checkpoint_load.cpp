// Load time and peak memory of an SD1.5-shaped checkpoint (UNet, VAE, SD1 text encoder) through
// the project's loaders, against reading the file once and against the size of the tensors:
//
//     bench_checkpoint_load [CHECKPOINT.safetensors] [--threads N] [--seed N]
//
// Without a checkpoint, one with random F16 weights is made in a temporary directory (the code
// of bench_make_sd15_checkpoint, run in a child process so its memory does not count here).
//
// Each measurement is made twice: with the file evicted from the page cache (cold: the disk's
// speed counts) and right after (warm: only the loaders' own work counts). Peak memory is the
// rise of the kernel's peak-RSS mark (VmHWM, reset before each load), which counts the file's
// mapped pages as well as the float32 modules.

#include "ProcessMemory.h"
#include "Sd15Checkpoint.h"

#include "core/Error.h"
#include "core/diffusion/ModelConfig.h"
#include "core/diffusion/ModelLoader.h"
#include "core/diffusion/Vae.h"
#include "core/io/TensorSource.h"
#include "core/text/ClipTextEncoder.h"

#include <ATen/Parallel.h>

#include <QElapsedTimer>
#include <QFile>
#include <QFileInfo>
#include <QString>
#include <QTemporaryDir>

#include <fcntl.h>
#include <malloc.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

using namespace studio;

namespace {

constexpr size_t kReadChunk = size_t(16) << 20;
constexpr double kColdEnough = 0.01; // at most this fraction of the file cached counts as cold
constexpr double kMiB = 1024.0 * 1024.0;

struct Options
{
    QString checkpoint;
    QString generatePath; // set in the child that makes the checkpoint
    int threads = 0;
    uint64_t seed = 1;
};

// --- process memory -------------------------------------------------------------------------

// --- page cache -----------------------------------------------------------------------------

// The fraction of `path`'s pages in the page cache (mincore on a fresh mapping), or -1.
double cachedFraction(const QString& path)
{
    const int fd = ::open(QFile::encodeName(path).constData(), O_RDONLY);
    if (fd < 0) {
        return -1.0;
    }
    const auto size = static_cast<size_t>(QFileInfo(path).size());
    void* mapping = mmap(nullptr, size, PROT_READ, MAP_SHARED, fd, 0);
    ::close(fd);
    if (mapping == MAP_FAILED) {
        return -1.0;
    }
    const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
    std::vector<unsigned char> resident((size + page - 1) / page);
    size_t cached = 0;
    if (mincore(mapping, size, resident.data()) == 0) {
        for (const unsigned char flags : resident) {
            cached += flags & 1u;
        }
    }
    munmap(mapping, size);
    return static_cast<double>(cached) / static_cast<double>(resident.size());
}

// Drops `path` from the page cache: first only its own pages (posix_fadvise, no root needed,
// leaves the rest of the shared machine's cache alone), then all clean pages when that was not
// enough and /proc/sys/vm/drop_caches is writable. Returns how it was done.
QString evictFromPageCache(const QString& path)
{
    const int fd = ::open(QFile::encodeName(path).constData(), O_RDONLY);
    if (fd >= 0) {
        fdatasync(fd); // dirty pages cannot be dropped
        posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
        ::close(fd);
    }
    if (cachedFraction(path) <= kColdEnough) {
        return QStringLiteral("posix_fadvise(DONTNEED)");
    }
    sync();
    std::ofstream dropCaches("/proc/sys/vm/drop_caches");
    dropCaches << "1";
    dropCaches.flush();
    if (dropCaches.good() && cachedFraction(path) <= kColdEnough) {
        return QStringLiteral("drop_caches");
    }
    return QStringLiteral("not possible: the file may still be cached");
}

// --- the measurements -----------------------------------------------------------------------

struct Step
{
    QString name;
    QString cache; // "cold" / "warm" and the cached fraction before the step
    double seconds = 0.0;
    double peakMiB = -1.0; // rise of VmHWM; -1 when not measured
};

Step readOnce(const QString& path, const QString& cache)
{
    Step step{QStringLiteral("read the file once"), cache};
    const int fd = ::open(QFile::encodeName(path).constData(), O_RDONLY);
    if (fd < 0) {
        throw Error(QStringLiteral("cannot open '%1'").arg(path));
    }
    std::vector<char> buffer(kReadChunk);
    QElapsedTimer timer;
    timer.start();
    while (::read(fd, buffer.data(), buffer.size()) > 0) {
    }
    step.seconds = timer.nsecsElapsed() / 1e9;
    ::close(fd);
    return step;
}

int64_t tensorBytes(const torch::nn::Module& module)
{
    int64_t bytes = 0;
    for (const at::Tensor& tensor : module.parameters()) {
        bytes += static_cast<int64_t>(tensor.nbytes());
    }
    for (const at::Tensor& tensor : module.buffers()) {
        bytes += static_cast<int64_t>(tensor.nbytes());
    }
    return bytes;
}

struct LoadResult
{
    Step total;
    std::vector<Step> components;
    int64_t float32Bytes = 0;
    double rssAnonMiB = 0.0; // right after loading, the source still open
    double rssFileMiB = 0.0;
    bool peakWasReset = true;
};

// The three components as the application loads them, each step timed.
LoadResult loadAll(const QString& path, const QString& cache)
{
    LoadResult result;
    result.total = Step{QStringLiteral("load UNet + VAE + text"), cache};
    malloc_trim(0);
    result.peakWasReset = bench::resetPeakRss();
    const double baseline =
        result.peakWasReset ? bench::statusMiB("VmRSS") : bench::statusMiB("VmHWM");

    QElapsedTimer total;
    QElapsedTimer step;
    total.start();
    step.start();
    auto lap = [&](const char* name) {
        result.components.push_back(Step{QLatin1String(name), cache, step.nsecsElapsed() / 1e9});
        step.restart();
    };

    std::unique_ptr<io::TensorSource> source = io::openTensorSource(path);
    ModelConfig config = resolveModelConfig(path, QString(), *source);
    lap("  open + detect config");
    const UNetModel unet = loadUNet(*source, config);
    lap("  UNet");
    const AutoencoderKL vae = loadVae(*source, findVaePrefix(*source));
    lap("  VAE");
    const DetectedClipText detected = detectClipTextEncoder(*source);
    const ClipTextEncoder text = loadClipTextEncoder(*source, detected.config, detected.prefix);
    lap("  text encoder");
    result.total.seconds = total.nsecsElapsed() / 1e9;

    result.total.peakMiB = bench::statusMiB("VmHWM") - baseline;
    result.rssAnonMiB = bench::statusMiB("RssAnon");
    result.rssFileMiB = bench::statusMiB("RssFile");
    result.float32Bytes = tensorBytes(*unet) + tensorBytes(*vae) + tensorBytes(*text);
    return result;
}

// Constructing the modules alone (LibTorch's default initialisation, which the loaders do
// before they copy the weights in): the part of the load time that is not about the file.
Step buildOnly()
{
    Step step{QStringLiteral("build modules, no weights"), QStringLiteral("-")};
    QElapsedTimer timer;
    timer.start();
    const UNetModel unet{UNetConfig{}};
    const AutoencoderKL vae{bench::sdVaeConfig()};
    const ClipTextEncoder text{ClipTextConfig::sd1()};
    step.seconds = timer.nsecsElapsed() / 1e9;
    return step;
}

QString cacheLabel(const char* state, const QString& path)
{
    return QStringLiteral("%1 (%2% cached)")
        .arg(QLatin1String(state))
        .arg(100.0 * cachedFraction(path), 0, 'f', 0);
}

// --- making a checkpoint --------------------------------------------------------------------

// In a child process, so the generator's 5 GB peak is not this process's.
void generateInChild(const QString& path, const Options& options)
{
    const std::string command = "'" + bench::selfExecutable() + "' --generate '" +
                                path.toStdString() + "' --seed " + std::to_string(options.seed) +
                                " --threads " + std::to_string(options.threads);
    std::fprintf(stderr, "making an SD1.5-shaped checkpoint in %s ...\n", qPrintable(path));
    if (std::system(command.c_str()) != 0) {
        throw Error(QStringLiteral("making the checkpoint '%1' failed").arg(path));
    }
}

int runGenerator(const Options& options)
{
    const bench::Sd15CheckpointSummary summary =
        bench::writeSd15Checkpoint(options.generatePath, options.seed);
    std::fprintf(stderr, "wrote %lld tensors, %.1f MiB\n", static_cast<long long>(summary.tensors),
                 summary.dataBytes / kMiB);
    return summary.countsMatch() ? 0 : 1;
}

// --- output ---------------------------------------------------------------------------------

void printStep(const Step& step, double fileMiB)
{
    const QString peak =
        step.peakMiB < 0.0 ? QStringLiteral("-") : QString::number(step.peakMiB, 'f', 0);
    std::printf("%-26s %-20s %9.2f %10.0f %10s\n", qPrintable(step.name), qPrintable(step.cache),
                step.seconds, fileMiB / step.seconds, qPrintable(peak));
}

void printReport(const QString& path, const std::vector<Step>& reads,
                 const std::vector<LoadResult>& loads, const Step& build, const QString& eviction)
{
    const double fileMiB = QFileInfo(path).size() / kMiB;
    std::printf("\ncheckpoint %s: %.0f MiB (F16), %d threads; cold = evicted by %s\n\n",
                qPrintable(path), fileMiB, at::get_num_threads(), qPrintable(eviction));
    std::printf("%-26s %-20s %9s %10s %10s\n", "step", "page cache", "seconds", "file MiB/s",
                "peak MiB");
    for (size_t i = 0; i < reads.size(); ++i) {
        printStep(reads[i], fileMiB);
        printStep(loads[i].total, fileMiB);
        for (const Step& component : loads[i].components) {
            std::printf("%-26s %-20s %9.2f\n", qPrintable(component.name), "", component.seconds);
        }
    }
    std::printf("%-26s %-20s %9.2f\n", qPrintable(build.name), qPrintable(build.cache),
                build.seconds);

    const double float32MiB = loads.front().float32Bytes / kMiB;
    std::printf("\nfloat32 tensors loaded: %.0f MiB; RSS right after loading: %.0f MiB anonymous "
                "+ %.0f MiB file-backed (the mapping)\n",
                float32MiB, loads.front().rssAnonMiB, loads.front().rssFileMiB);
    for (size_t i = 0; i < reads.size(); ++i) {
        const LoadResult& load = loads[i];
        std::printf("%s: load / read = %.2f; peak / float32 tensors = %.2f; peak / file = %.2f%s\n",
                    i == 0 ? "cold" : "warm", load.total.seconds / reads[i].seconds,
                    load.total.peakMiB / float32MiB, load.total.peakMiB / fileMiB,
                    load.peakWasReset ? "" : " (VmHWM not reset: peak includes earlier steps)");
    }
}

bool parseOptions(int argc, char** argv, Options& options)
{
    for (int i = 1; i < argc; ++i) {
        const std::string arg = argv[i];
        const bool hasValue = i + 1 < argc;
        if (arg == "--threads" && hasValue) {
            options.threads = std::atoi(argv[++i]);
        } else if (arg == "--seed" && hasValue) {
            options.seed = std::strtoull(argv[++i], nullptr, 10);
        } else if (arg == "--generate" && hasValue) {
            options.generatePath = QString::fromLocal8Bit(argv[++i]);
        } else if (arg[0] != '-' && options.checkpoint.isEmpty()) {
            options.checkpoint = QString::fromLocal8Bit(argv[i]);
        } else {
            return false;
        }
    }
    return options.threads >= 0;
}

int run(const Options& options)
{
    QTemporaryDir directory;
    QString path = options.checkpoint;
    if (path.isEmpty()) {
        if (!directory.isValid()) {
            throw Error(QStringLiteral("cannot create a temporary directory"));
        }
        path = directory.filePath(QStringLiteral("sd15-random-f16.safetensors"));
        generateInChild(path, options);
    }

    std::vector<Step> reads;
    std::vector<LoadResult> loads;
    const QString eviction = evictFromPageCache(path);
    reads.push_back(readOnce(path, cacheLabel("cold", path)));
    evictFromPageCache(path);
    loads.push_back(loadAll(path, cacheLabel("cold", path)));

    reads.push_back(readOnce(path, cacheLabel("warm", path)));
    loads.push_back(loadAll(path, cacheLabel("warm", path)));
    const Step build = buildOnly();

    printReport(path, reads, loads, build, eviction);
    return 0;
}

} // namespace

int main(int argc, char** argv)
{
    Options options;
    if (!parseOptions(argc, argv, options)) {
        std::fprintf(stderr, "usage: %s [CHECKPOINT.safetensors] [--threads N] [--seed N]\n",
                     argv[0]);
        return 2;
    }
    if (options.threads > 0) {
        at::set_num_threads(options.threads);
    }

    try {
        return options.generatePath.isEmpty() ? run(options) : runGenerator(options);
    } catch (const Error& error) {
        std::fprintf(stderr, "error: %s\n", error.what());
        return 1;
    }
}
