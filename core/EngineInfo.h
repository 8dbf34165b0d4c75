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

} // namespace studio
