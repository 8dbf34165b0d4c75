#pragma once

// Text-to-image generation behind a torch-free interface, for the studio's merge and preview
// views: a model is loaded once, then images are generated with 0, 1 or more hypernetworks
// stacked, each at its own strength. Every hypernetwork file is loaded once and kept on the
// device while the generator lives. Results are plain RGB bytes and the webui infotext.

#include <QByteArray>
#include <QString>

#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

namespace studio {

class StableDiffusion;

struct GeneratorModelOptions
{
    QString checkpoint;
    QString config;    // ldm YAML; empty: beside the checkpoint, else detected
    QString tokenizer; // empty: searched in the usual places
    QString device = QStringLiteral("cpu");
    QString precision = QStringLiteral("fp32");
    int clipSkip = 0;
};

struct StackEntry
{
    QString path;
    double strength = 1.0;
};

struct ImageRequest
{
    QString prompt;
    QString negativePrompt;
    int64_t seed = 0;                            // -1: random
    QString sampler = QStringLiteral("euler_a"); // "euler_a" or "ddim"
    int steps = 20;
    double cfgScale = 7.0;
    int width = 0; // 0: the model's native size
    int height = 0;
    std::vector<StackEntry> hypernetworks; // applied in order (a sequential stack)
};

struct GeneratedImage
{
    int width = 0;
    int height = 0;
    QByteArray rgb;     // width * height * 3 bytes, row-major RGB888
    QString parameters; // the webui infotext, as written to a PNG's "parameters" chunk
    int64_t seed = 0;   // the seed used (resolved when the request asked for -1)
};

class ImageGenerator
{
public:
    // Loads the checkpoint. Throws studio::Error naming the file when it cannot.
    explicit ImageGenerator(const GeneratorModelOptions& options);
    ~ImageGenerator();
    ImageGenerator(const ImageGenerator&) = delete;
    ImageGenerator& operator=(const ImageGenerator&) = delete;

    // "SD1 (eps), 64x64 native, from tiny.safetensors": what the loaded model is.
    QString modelDescription() const;

    // Generates one image. Deterministic per request on the CPU. Throws studio::Error for a
    // bad request (size, sampler, a hypernetwork file that cannot be read).
    GeneratedImage generate(const ImageRequest& request);

    // Asks a running generate() on another thread to stop; it then throws studio::Error
    // ("generation cancelled"). Safe from any thread.
    void cancel();

private:
    struct Impl;
    std::unique_ptr<Impl> m_impl;
};

// The size `model` makes images at unless told otherwise: the latent size it was trained at
// (the ldm YAML's image_size, from `config` or the YAML beside `checkpoint`) times the VAE
// factor; without a YAML, the sizes the families were released at (SD2 v models 768, others 512).
int nativeImageSize(const StableDiffusion& model, const QString& checkpoint,
                    const QString& config = QString());

// What a checkpoint is, without loading its weights ("SD1.x, eps prediction, 4-channel UNet
// with context 768; configuration from model.yaml"), for the model pickers. Throws studio::Error
// naming the file when it is not a checkpoint.
QString describeCheckpoint(const QString& checkpoint, const QString& config = QString());

// Writes `image` as a PNG with its parameters chunk, atomically.
void saveGeneratedImage(const GeneratedImage& image, const QString& path);

} // namespace studio
