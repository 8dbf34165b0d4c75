#pragma once

// A training dataset: a folder of captioned images, the prompt each image gets from a template,
// the size it trains at and the batches of every epoch (spec hypernetworks.md 3.2 and 4.4,
// studio.md 5). Every random choice comes from the run's seed through a stream keyed by what it
// decides (the epoch, the image, the step), never from a shared generator, so resuming at any
// step and generating previews cannot change what training sees.

#include "core/train/RunConfig.h"

#include <ATen/core/Tensor.h>

#include <QString>
#include <QStringList>

#include <cstdint>
#include <vector>

namespace studio {

struct DatasetImage
{
    QString path;
    QString caption; // from NAME.txt (read whole, not stripped) or the file name
    int sourceWidth = 0;
    int sourceHeight = 0;
    int width = 0; // the size it trains at: fixed W x H, or its no-crop size
    int height = 0;
};

struct SkippedImage
{
    QString path;
    QString reason;
};

// The no-crop size of a w x h image for the box W x H (extension 4.4): scaled up when smaller
// than the box in both sides, long side fitted to the box, each side rounded up to 64.
std::pair<int, int> noCropSize(int width, int height, int boxWidth, int boxHeight);

// Keyed random streams: the same (seed, keys) always gives the same numbers.
uint64_t streamSeed(uint64_t seed, std::initializer_list<uint64_t> keys);

class Dataset
{
public:
    // Scans `options.folder` (not recursive; png, jpg, jpeg, webp, bmp, case-insensitive, sorted
    // by name), reads every image's size and caption and the template lines. Unreadable images
    // are listed in skipped() and left out. Throws studio::Error naming the folder or file when
    // the folder is missing, nothing usable is left, or the template is missing or empty.
    // `hypernetworkName` replaces [name]; `latentFactor` (8 for SD) must divide every size.
    Dataset(const DatasetSection& options, const QString& hypernetworkName, uint64_t seed,
            int latentFactor = 8);

    const DatasetSection& options() const { return m_options; }
    const std::vector<DatasetImage>& images() const { return m_images; }
    const std::vector<SkippedImage>& skipped() const { return m_skipped; }
    const QStringList& templateLines() const { return m_templateLines; }
    int size() const { return static_cast<int>(m_images.size()); }

    // Whether the prompt of an image can change between uses (tag shuffle or dropout); when it
    // cannot, its text conditioning can be cached.
    bool promptsVary() const;

    // The prompt of image `index` for its use in `epoch`: a template line ([name], [filewords]),
    // tags split on ',', dropped and shuffled as configured. Without shuffle and dropout it is the
    // same in every epoch (one template line per image for the whole run, as the webui does).
    QString prompt(int index, int64_t epoch) const;

    // Whether image `index` is flipped in `epoch` (probability flipProbability).
    bool flipped(int index, int64_t epoch) const;

    // The pixels of image `index` at its training size, [3, H, W] float32 in [-1, 1], flipped
    // when asked. Resizing: bicubic to a fixed size, Lanczos for no-crop (as the originals).
    at::Tensor loadPixels(int index, bool flip) const;

    // The micro-batches of `epoch`: indices into images(), all images of a batch the same
    // size (GroupedBatchSampler, spec 3.2: N / batch batches, whole batches per size group, the
    // remainder drawn from groups with leftovers, then shuffled).
    std::vector<std::vector<int>> epochBatches(int64_t epoch, int batchSize) const;

private:
    DatasetSection m_options;
    QString m_name;
    uint64_t m_seed;
    std::vector<DatasetImage> m_images;
    std::vector<SkippedImage> m_skipped;
    QStringList m_templateLines;
};

// The built-in templates (resources/templates): "style_filewords", "hypernetwork", "style",
// "subject", "subject_filewords", "none". A template value that is an existing file is read
// from there instead.
QStringList builtInTemplateNames();
QStringList readTemplateLines(const QString& templateValue);

} // namespace studio
