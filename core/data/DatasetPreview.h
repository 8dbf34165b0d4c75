#pragma once

// What a dataset folder will train on, for the studio's Train page: every usable image with the
// caption and the prompt it gets, and the files that will be skipped with the reason. Torch-free
// for the UI; the work is done by Dataset itself, so the preview follows the training rules
// (captions, templates, regex, sizes, skipped files) exactly instead of imitating them.

#include "core/train/RunConfig.h"

#include <QString>
#include <QStringList>

#include <cstdint>
#include <vector>

namespace studio {

struct DatasetPreviewImage
{
    QString path;
    QString caption; // from NAME.txt or the file name
    QString prompt;  // the template line filled in, as the first epoch uses it
    int sourceWidth = 0;
    int sourceHeight = 0;
    int width = 0; // the size it trains at
    int height = 0;
};

struct DatasetPreview
{
    std::vector<DatasetPreviewImage> images;
    QStringList skipped; // one line per unreadable file: its name and why
    QStringList templateLines;
    bool promptsVary = false; // tag shuffle or dropout: prompts change with every use
    QString error;            // why the folder cannot train as set; empty when it can
};

// The built-in prompt templates ("style_filewords", "hypernetwork", ...), as Dataset reads them.
QStringList datasetTemplateNames();

// Scans `options.folder` as training will (every image is decoded, so call it off the UI
// thread). Never throws: a problem is returned in `error`.
DatasetPreview previewDataset(const DatasetSection& options, const QString& hypernetworkName,
                              uint64_t seed);

} // namespace studio
