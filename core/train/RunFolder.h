#pragma once

// Reading a run folder back (docs/run-config.md, "output"): the loss of every step from
// loss.csv, the previews in images/, and which folders are runs at all. Torch-free, for the
// studio's run browser; the Trainer writes these files.

#include <QString>
#include <QStringList>

#include <cstdint>
#include <vector>

namespace studio {

// One line of loss.csv: step,epoch,epoch_step,loss,learn_rate.
struct LossRow
{
    int64_t step = 0;
    int64_t epoch = 0;
    int64_t epochStep = 0;
    double loss = 0.0;
    double learningRate = 0.0;
};

// Every data line of loss.csv, in file order. A line that does not parse (a run killed while
// writing it) is left out. Throws studio::Error naming the file when it cannot be read or its
// header is not the loss.csv header.
std::vector<LossRow> readLossCsv(const QString& path);

struct RunPreviewImage
{
    int64_t step = 0;
    QString path;
};

// images/NAME-STEP.png of a run folder, by step.
std::vector<RunPreviewImage> runPreviewImages(const QString& runFolder);

// A folder with a run.json or a loss.csv.
bool isRunFolder(const QString& folder);

// The run folders directly inside `parent`, most recently changed first.
QStringList findRunFolders(const QString& parent);

} // namespace studio
