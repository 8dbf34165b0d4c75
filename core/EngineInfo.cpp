#include "core/EngineInfo.h"

#include <ATen/Parallel.h>
#include <torch/cuda.h>
#include <torch/version.h>

namespace studio {

namespace {

// The count before any setCpuThreads(), so that "default" can be chosen again later.
int startupThreads()
{
    static const int threads = at::get_num_threads();
    return threads;
}

} // namespace

EngineInfo engineInfo()
{
    startupThreads(); // remembered before anything changes it
    EngineInfo info;
    info.studioVersion = QStringLiteral(HNSTUDIO_VERSION);
    info.torchVersion = QStringLiteral(TORCH_VERSION);
    info.devices << QStringLiteral("cpu");
    const int cudaDevices = static_cast<int>(torch::cuda::device_count());
    for (int i = 0; i < cudaDevices; ++i) {
        info.devices << QStringLiteral("cuda:%1").arg(i);
    }
    info.cpuThreads = at::get_num_threads();
    return info;
}

void setCpuThreads(int threads)
{
    const int startup = startupThreads();
    at::set_num_threads(threads > 0 ? threads : startup);
}

} // namespace studio
