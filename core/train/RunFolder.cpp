#include "core/train/RunFolder.h"

#include "core/Error.h"
#include "core/train/Trainer.h"

#include <QDateTime>
#include <QDir>
#include <QFile>
#include <QFileInfo>

#include <algorithm>

namespace studio {

namespace {

const QString kLossCsvHeader = QStringLiteral("step,epoch,epoch_step,loss,learn_rate");

bool parseLossRow(const QString& line, LossRow& row)
{
    const QStringList cells = line.split(QLatin1Char(','));
    if (cells.size() != 5) {
        return false;
    }
    bool ok[5] = {};
    row.step = cells[0].toLongLong(&ok[0]);
    row.epoch = cells[1].toLongLong(&ok[1]);
    row.epochStep = cells[2].toLongLong(&ok[2]);
    row.loss = cells[3].toDouble(&ok[3]);
    row.learningRate = cells[4].toDouble(&ok[4]);
    return std::all_of(std::begin(ok), std::end(ok), [](bool b) { return b; });
}

// The STEP of NAME-STEP.png; NAME may itself hold '-'.
bool previewStep(const QFileInfo& file, int64_t& step)
{
    const QString stem = file.completeBaseName();
    const qsizetype dash = stem.lastIndexOf(QLatin1Char('-'));
    if (dash < 0) {
        return false;
    }
    bool ok = false;
    step = stem.mid(dash + 1).toLongLong(&ok);
    return ok;
}

// When a run last wrote: loss.csv grows every step, which the folder's own time does not show.
QDateTime lastWritten(const QString& runFolder)
{
    const QFileInfo lossCsv(Trainer::lossCsvPath(runFolder));
    const QFileInfo runJson(Trainer::runJsonPath(runFolder));
    return std::max(lossCsv.exists() ? lossCsv.lastModified() : QDateTime(),
                    runJson.exists() ? runJson.lastModified() : QDateTime());
}

} // namespace

std::vector<LossRow> readLossCsv(const QString& path)
{
    QFile file(path);
    if (!file.open(QIODevice::ReadOnly | QIODevice::Text)) {
        throw Error(QStringLiteral("cannot read '%1': %2")
                        .arg(QDir::toNativeSeparators(path), file.errorString()));
    }
    const QStringList lines = QString::fromUtf8(file.readAll()).split(QLatin1Char('\n'));
    if (lines.first().trimmed() != kLossCsvHeader) {
        throw Error(QStringLiteral("'%1' is not a loss.csv of a run: its first line should be "
                                   "'%2'")
                        .arg(QDir::toNativeSeparators(path), kLossCsvHeader));
    }

    std::vector<LossRow> rows;
    for (const QString& line : lines.mid(1)) {
        LossRow row;
        if (parseLossRow(line.trimmed(), row)) {
            rows.push_back(row);
        }
    }
    return rows;
}

std::vector<RunPreviewImage> runPreviewImages(const QString& runFolder)
{
    const QDir images(QDir(runFolder).filePath(QStringLiteral("images")));
    std::vector<RunPreviewImage> previews;
    for (const QFileInfo& file :
         images.entryInfoList({QStringLiteral("*.png")}, QDir::Files, QDir::Name)) {
        int64_t step = 0;
        if (previewStep(file, step)) {
            previews.push_back({step, file.filePath()});
        }
    }
    std::stable_sort(
        previews.begin(), previews.end(),
        [](const RunPreviewImage& a, const RunPreviewImage& b) { return a.step < b.step; });
    return previews;
}

bool isRunFolder(const QString& folder)
{
    return QFileInfo::exists(Trainer::runJsonPath(folder)) ||
           QFileInfo::exists(Trainer::lossCsvPath(folder));
}

QStringList findRunFolders(const QString& parent)
{
    struct Run
    {
        QString folder;
        QDateTime changed;
    };
    std::vector<Run> runs;
    for (const QFileInfo& entry :
         QDir(parent).entryInfoList(QDir::Dirs | QDir::NoDotAndDotDot, QDir::Name)) {
        if (isRunFolder(entry.filePath())) {
            runs.push_back({entry.filePath(), lastWritten(entry.filePath())});
        }
    }
    // The run a user just trained is the one they most likely want.
    std::stable_sort(runs.begin(), runs.end(),
                     [](const Run& a, const Run& b) { return a.changed > b.changed; });

    QStringList folders;
    for (const Run& run : runs) {
        folders << run.folder;
    }
    return folders;
}

} // namespace studio
