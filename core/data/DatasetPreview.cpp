#include "core/data/DatasetPreview.h"

#include "core/Error.h"
#include "core/data/Dataset.h"

#include <QFileInfo>

namespace studio {

namespace {

// SD's VAE factor. The trainer uses the loaded model's own factor, which divides 8 for every
// supported model, so a size accepted here is accepted there.
constexpr int kLatentFactor = 8;

DatasetPreviewImage previewImage(const Dataset& dataset, int index)
{
    const DatasetImage& image = dataset.images().at(static_cast<size_t>(index));
    DatasetPreviewImage preview;
    preview.path = image.path;
    preview.caption = image.caption;
    preview.prompt = dataset.prompt(index, 0);
    preview.sourceWidth = image.sourceWidth;
    preview.sourceHeight = image.sourceHeight;
    preview.width = image.width;
    preview.height = image.height;
    return preview;
}

} // namespace

QStringList datasetTemplateNames()
{
    return builtInTemplateNames();
}

DatasetPreview previewDataset(const DatasetSection& options, const QString& hypernetworkName,
                              uint64_t seed)
{
    DatasetPreview preview;
    try {
        const Dataset dataset(options, hypernetworkName, seed, kLatentFactor);
        for (int i = 0; i < dataset.size(); ++i) {
            preview.images.push_back(previewImage(dataset, i));
        }
        for (const SkippedImage& skipped : dataset.skipped()) {
            preview.skipped << skipped.reason;
        }
        preview.templateLines = dataset.templateLines();
        preview.promptsVary = dataset.promptsVary();
    } catch (const Error& error) {
        preview.error = error.message();
    } catch (const std::exception& error) {
        // OpenCV or the allocator: still a message for the form, never a crash of the studio.
        preview.error = QString::fromUtf8(error.what());
    }
    return preview;
}

} // namespace studio
