#pragma once

// Everything a training run needs, as one JSON file (docs/run-config.md): the studio saves and
// loads exactly this file and `hnstudio train RUN.json` reads it. Parsing is strict: an unknown
// key, a wrong type or a value out of range is an error that names the field ("training.steps")
// and says how to fix it. Keys that are left out take the defaults below.

#include "core/diffusion/SamplerKind.h"
#include "core/hypernetwork/HypernetworkConfig.h"
#include "core/train/LrSchedule.h"

#include <QJsonObject>
#include <QString>

#include <cstdint>

namespace studio {

enum class LatentSampling
{
    Once,          // one sample of the VAE posterior per image, drawn at load, kept
    Deterministic, // the posterior mean
    Random,        // a fresh sample every time the image is used
};

enum class ClipGradMode
{
    None,
    Norm,  // total L2 norm over all hypernetwork parameters
    Value, // every gradient element clamped to [-value, value]
};

enum class OptimizerKind
{
    AdamW,
    Adam,
    SGD,
    RMSprop,
    Adagrad,
};

enum class AttentionChoice
{
    Plain,
    Sliced,
    Sdpa,
};

struct ModelSection
{
    QString checkpoint; // .safetensors or .ckpt (required)
    QString config;     // ldm YAML; empty: beside the checkpoint, else detected
    QString tokenizer;  // vocabulary; empty: searched (ClipTokenizer::locate)
    int clipSkip = 0;   // 0: the model's own layer
};

struct HypernetworkSection
{
    QString name; // required: file names are NAME-STEP.pt
    QString file; // continue training this .pt (and its .optim); empty: create one
    // Used only when creating (file empty): the structure of the new hypernetwork.
    HypernetworkConfig create;
    // Strength when this hypernetwork is used outside training. Training and previews always
    // run at strength 1 (spec 4.2), so this never changes what a run computes.
    double strength = 1.0;
};

struct DatasetSection
{
    QString folder; // required: images (png, jpg, jpeg, webp, bmp)
    // A template file, or a built-in name (builtInTemplateNames(): "style_filewords", ...).
    QString templateFile = QStringLiteral("style_filewords");
    QString filenameWordRegex; // webui dataset_filename_word_regex
    QString filenameJoinString = QStringLiteral(" ");
    int width = 512;
    int height = 512;
    bool noCrop = false;          // keep the aspect ratio, sides rounded up to 64
    double flipProbability = 0.0; // horizontal flip, really applied
    bool shuffleTags = false;
    double tagDropout = 0.0;
    LatentSampling latentSampling = LatentSampling::Once;
};

struct OptimizerSection
{
    OptimizerKind kind = OptimizerKind::AdamW;
    double weightDecay = 0.01; // AdamW default; Adam/SGD/RMSprop/Adagrad default 0 in torch
    double beta1 = 0.9;
    double beta2 = 0.999;
    double eps = 1e-8;
    double momentum = 0.0; // SGD, RMSprop
    bool nesterov = false; // SGD
    double alpha = 0.99;   // RMSprop smoothing
    bool amsgrad = false;  // Adam, AdamW
};

struct TrainingSection
{
    int64_t steps = 1000; // optimizer steps to reach (Max steps)
    int batchSize = 1;
    int gradientAccumulation = 1;
    uint64_t seed = 0; // fixes init (when creating), data order, noise, timesteps
    OptimizerSection optimizer;
    LrScheduleSpec learningRate; // maxSteps and initialStep are set from steps / the resume
    ClipGradMode clipGradMode = ClipGradMode::None;
    double clipGradValue = 0.1;
    QString device = QStringLiteral("cpu");
    QString precision = QStringLiteral("fp32"); // frozen model weights; the hypernetwork is fp32
    AttentionChoice attention = AttentionChoice::Plain;
    bool gradientCheckpointing = false;
    bool unloadOptimizer = true; // move the optimizer state to the CPU during CUDA previews
};

struct PreviewSection
{
    QString prompt; // empty: the first caption of the current batch
    QString negativePrompt;
    int64_t seed = -1; // -1: drawn from the run's own generator
    SamplerKind sampler = SamplerKind::EulerAncestral;
    int steps = 20;
    double cfgScale = 7.0;
    int width = 0; // 0: the training width / height
    int height = 0;
};

struct OutputSection
{
    QString folder;             // required: the run folder
    int64_t saveEvery = 500;    // 0: only at the end (and at cycle ends when asked)
    int64_t previewEvery = 500; // 0: none (except at cycle ends when asked)
    bool saveAtCycleEnd = false;
    bool previewAtCycleEnd = false;
    bool saveOptimizer = true;
};

struct RunConfig
{
    static constexpr int kVersion = 1;

    ModelSection model;
    HypernetworkSection hypernetwork;
    DatasetSection dataset;
    TrainingSection training;
    PreviewSection preview;
    OutputSection output;

    // The schedule with maxSteps = training.steps and the given completed steps.
    LrScheduleSpec scheduleSpec(int64_t initialStep = 0) const;
};

// Field by field over what a run file holds, so that a config equals the one its file reads
// back as. Not compared: training.learningRate.maxSteps / initialStep (scheduleSpec() sets
// them) and the file-format details of hypernetwork.create (integer items, extension keys,
// step and checkpoint metadata), which a run file does not carry.
bool operator==(const RunConfig& a, const RunConfig& b);
inline bool operator!=(const RunConfig& a, const RunConfig& b)
{
    return !(a == b);
}

// Strict parse of a run file's JSON. `sourceName` names the file in messages. Relative paths in
// the file are resolved against `baseDir` (the file's folder). Throws studio::Error naming the
// field and the fix; validateRunConfig runs too.
RunConfig runConfigFromJson(const QJsonObject& json, const QString& sourceName,
                            const QString& baseDir);

// Reads and parses a run file; errors name the file and the field.
RunConfig readRunConfig(const QString& path);

// Every field, defaults included, so that the file documents the whole run.
QJsonObject runConfigToJson(const RunConfig& config);

// Writes atomically.
void writeRunConfig(const RunConfig& config, const QString& path);

// Cross-field checks (layer / dropout structures, schedule, sizes, required fields). Throws
// studio::Error naming the field. Does not touch the file system.
void validateRunConfig(const RunConfig& config);

// Names as written in the file ("adamw", "euler_a", ...).
QString optimizerName(OptimizerKind kind); // PyTorch's class name: "AdamW", "SGD"
QString latentSamplingName(LatentSampling method);

// Case-insensitive ("adamw", "AdamW", "rmsprop"); throws studio::Error listing the choices.
OptimizerKind parseOptimizerKind(const QString& name);
// "once", "deterministic", "random"; throws studio::Error listing the choices.
LatentSampling parseLatentSampling(const QString& name);

// torch's default weight decay: 0.01 for AdamW, 0 for the others (what a run file that leaves
// training.optimizer.weight_decay out gets).
double defaultWeightDecay(OptimizerKind kind);

} // namespace studio
