#pragma once

// What the engine runs on, as plain values for the UI and the CLI (no torch types).

#include <QString>
#include <QStringList>

namespace studio {

struct EngineInfo
{
    QString studioVersion;
    QString torchVersion;
    QStringList devices; // "cpu", then "cuda:0", ... when CUDA is available
    int cpuThreads = 0;
};

EngineInfo engineInfo();

// Sets how many CPU threads LibTorch's intra-op work uses, for the whole process. `threads` <= 0
// restores the count the process started with (LibTorch's choice or OMP_NUM_THREADS).
void setCpuThreads(int threads);

} // namespace studio
