#include "core/EngineInfo.h"

#include <ATen/Parallel.h>
#include <torch/cuda.h>
#include <torch/version.h>

namespace studio {

EngineInfo engineInfo()
{
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

} // namespace studio
