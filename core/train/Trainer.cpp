#include "core/train/Trainer.h"

#include "core/EngineInfo.h"
#include "core/Error.h"
#include "core/Logging.h"
#include "core/data/Dataset.h"
#include "core/data/LatentCache.h"
#include "core/diffusion/Sampler.h"
#include "core/diffusion/StableDiffusion.h"
#include "core/hypernetwork/Hypernetwork.h"
#include "core/hypernetwork/HypernetworkFile.h"
#include "core/io/AtomicFile.h"
#include "core/io/PngFile.h"
#include "core/train/Optimizer.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <torch/nn/utils/clip_grad.h>
#include <torch/utils.h>

#include <QDateTime>
#include <QDir>
#include <QFile>
#include <QFileInfo>
#include <QTextStream>

#include <chrono>
#include <cmath>
#include <map>
#include <optional>
#include <thread>

namespace studio {

namespace {

// Keys of the random streams (Dataset.h: streamSeed). Each decides one kind of thing.
constexpr uint64_t kNoiseStream = 0x6e6f697365ULL;    // noise and timestep of one sample
constexpr uint64_t kLatentStream = 0x6c6174656e74ULL; // latent sample (sampling "random")
constexpr uint64_t kDropoutStream = 0x64726f70ULL;    // the hypernetwork's dropout masks
constexpr uint64_t kPreviewStream = 0x70726576ULL;    // preview seed when none is set
constexpr uint64_t kInitStream = 0x696e6974ULL;       // init of a new hypernetwork

const QString kLossCsvHeader = QStringLiteral("step,epoch,epoch_step,loss,learn_rate");

int64_t residentBytes()
{
    QFile statm(QStringLiteral("/proc/self/statm"));
    if (!statm.open(QIODevice::ReadOnly)) {
        return 0;
    }
    const QList<QByteArray> fields = statm.readAll().split(' ');
    return fields.size() > 1 ? fields[1].toLongLong() * 4096 : 0;
}

QString shortestNumber(double value)
{
    return QString::number(value, 'g', QLocale::FloatingPointShortest);
}

at::Generator makeGenerator(uint64_t seed)
{
    return at::make_generator<at::CPUGeneratorImpl>(seed);
}

// Seeds the default generator of `device`, which LibTorch's dropout draws from.
void seedDefaultGenerator(c10::Device device, uint64_t seed)
{
    at::Generator generator = device.is_cpu() ? at::detail::getDefaultCPUGenerator()
                                              : at::globalContext().defaultGenerator(device);
    std::lock_guard<std::mutex> lock(generator.mutex());
    generator.set_current_seed(seed);
}

// The run's log file: every message with a timestamp, appended (a resumed run adds to it).
class RunLog
{
public:
    void open(const QString& path)
    {
        m_file.setFileName(path);
        if (!m_file.open(QIODevice::WriteOnly | QIODevice::Append | QIODevice::Text)) {
            throw Error(QStringLiteral("cannot write the log '%1': %2")
                            .arg(QDir::toNativeSeparators(path), m_file.errorString()));
        }
    }

    void write(const QString& line)
    {
        if (!m_file.isOpen()) {
            return;
        }
        const QString stamp = QDateTime::currentDateTime().toString(Qt::ISODate);
        m_file.write((stamp + QLatin1Char(' ') + line + QLatin1Char('\n')).toUtf8());
        m_file.flush();
    }

private:
    QFile m_file;
};

// loss.csv in the webui's columns. A resumed run keeps the rows up to its first step and
// continues from there, so the file always describes one consistent history.
class LossCsv
{
public:
    void open(const QString& path, int64_t keepUpToStep)
    {
        QStringList lines{kLossCsvHeader};
        QFile existing(path);
        if (keepUpToStep > 0 && existing.open(QIODevice::ReadOnly | QIODevice::Text)) {
            const QStringList old = QString::fromUtf8(existing.readAll()).split(QLatin1Char('\n'));
            for (const QString& line : old.mid(1)) {
                bool ok = false;
                const int64_t step = line.section(QLatin1Char(','), 0, 0).toLongLong(&ok);
                if (ok && step <= keepUpToStep) {
                    lines << line;
                }
            }
            existing.close();
        }
        io::writeFileAtomically(path, (lines.join(QLatin1Char('\n')) + QLatin1Char('\n')).toUtf8());

        m_file.setFileName(path);
        if (!m_file.open(QIODevice::WriteOnly | QIODevice::Append | QIODevice::Text)) {
            throw Error(QStringLiteral("cannot write '%1': %2")
                            .arg(QDir::toNativeSeparators(path), m_file.errorString()));
        }
    }

    void append(const StepRecord& record)
    {
        const QString line = QStringLiteral("%1,%2,%3,%4,%5\n")
                                 .arg(record.step)
                                 .arg(record.epoch)
                                 .arg(record.epochStep)
                                 .arg(QString::number(record.loss, 'f', 7))
                                 .arg(shortestNumber(record.learningRate));
        m_file.write(line.toUtf8());
        m_file.flush();
    }

private:
    QFile m_file;
};

AttentionKind attentionKind(AttentionChoice choice)
{
    switch (choice) {
    case AttentionChoice::Sliced:
        return AttentionKind::Sliced;
    case AttentionChoice::Sdpa:
        return AttentionKind::Sdpa;
    case AttentionChoice::Plain:
        break;
    }
    return AttentionKind::Plain;
}

// webui stack_conds: conditionings of different lengths (prompts of more than 75 tokens) are
// padded by repeating their last token vector, then stacked.
at::Tensor stackConditionings(const std::vector<at::Tensor>& conds)
{
    int64_t longest = 0;
    for (const at::Tensor& cond : conds) {
        longest = std::max(longest, cond.size(0));
    }
    std::vector<at::Tensor> padded;
    for (const at::Tensor& cond : conds) {
        const int64_t missing = longest - cond.size(0);
        padded.push_back(missing == 0
                             ? cond
                             : at::cat({cond, cond.slice(0, -1).expand({missing, cond.size(1)})}));
    }
    return at::stack(padded);
}

// Restores the training state a preview sets aside, even when the preview throws.
class PreviewIsolation
{
public:
    PreviewIsolation(Hypernetwork& hypernetwork, TrainingOptimizer& optimizer, c10::Device device,
                     bool unloadOptimizer)
        : m_hypernetwork(hypernetwork), m_optimizer(optimizer), m_device(device),
          m_strength(hypernetwork.strength()), m_cpuState(saveState(c10::kCPU)),
          m_unloaded(unloadOptimizer && device.is_cuda())
    {
        if (!device.is_cpu()) {
            m_deviceState = saveState(device);
        }
        m_hypernetwork.train(false);
        m_hypernetwork.setStrength(1.0);
        if (m_unloaded) {
            m_optimizer.unloadState();
        }
    }

    // A destructor must not throw (that would terminate the process without a save): a failed
    // reload of the optimizer state (out of device memory) is logged, and training goes on with
    // what could be restored.
    ~PreviewIsolation()
    {
        m_hypernetwork.setStrength(m_strength);
        m_hypernetwork.train(true);
        try {
            if (m_unloaded) {
                m_optimizer.reloadState();
            }
            restoreState(c10::kCPU, m_cpuState);
            if (m_deviceState.defined()) {
                restoreState(m_device, m_deviceState);
            }
        } catch (const std::exception& error) {
            qCWarning(lcTrain) << "restoring the training state after a preview failed:"
                               << error.what();
        }
    }

    PreviewIsolation(const PreviewIsolation&) = delete;
    PreviewIsolation& operator=(const PreviewIsolation&) = delete;

private:
    static at::Generator generatorOf(c10::Device device)
    {
        return device.is_cpu() ? at::detail::getDefaultCPUGenerator()
                               : at::globalContext().defaultGenerator(device);
    }

    static at::Tensor saveState(c10::Device device)
    {
        at::Generator generator = generatorOf(device);
        std::lock_guard<std::mutex> lock(generator.mutex());
        return generator.get_state();
    }

    static void restoreState(c10::Device device, const at::Tensor& state)
    {
        at::Generator generator = generatorOf(device);
        std::lock_guard<std::mutex> lock(generator.mutex());
        generator.set_state(state);
    }

    Hypernetwork& m_hypernetwork;
    TrainingOptimizer& m_optimizer;
    c10::Device m_device;
    double m_strength;
    at::Tensor m_cpuState;
    at::Tensor m_deviceState;
    bool m_unloaded;
};

// One run from start to end: everything the loop needs, loaded once.
class TrainingSession
{
public:
    TrainingSession(const RunConfig& config, const TrainerCallbacks& callbacks,
                    const QString& resumeFrom, std::function<bool()> keepGoing)
        : m_config(config), m_callbacks(callbacks), m_resumeFrom(resumeFrom),
          m_keepGoing(std::move(keepGoing)), m_runFolder(config.output.folder)
    {
    }

    TrainingResult run();

private:
    void prepareFolder();
    void loadModel();
    void loadHypernetwork();
    void loadDataset();
    void prepareOptimizer();
    void writeDatasetCsv() const;
    void say(const QString& message);

    double trainStep(int64_t step, bool& finite);
    at::Tensor microBatchLoss(int64_t step, int64_t epoch, const std::vector<int>& batch);
    at::Tensor conditioning(const std::vector<int>& batch, int64_t epoch);
    const std::vector<std::vector<int>>& batchesOf(int64_t epoch);
    void clipGradients();
    bool parametersFinite() const;
    bool gradientsFinite() const;
    TrainingResult trainSteps(TrainingResult result);
    void saveAndPreviewAfter(int64_t stepsDone);
    TrainingResult alreadyTrained(TrainingResult result, int64_t endStep);
    Error failedAfterSaving(const std::exception& error);

    QString save(int64_t stepsDone);
    void preview(int64_t stepsDone);
    StepRecord record(int64_t stepsDone, double loss, double learningRate, double seconds);
    TrainingResult diverged(int64_t step, double loss, double learningRate);

    const RunConfig& m_config;
    const TrainerCallbacks& m_callbacks;
    QString m_resumeFrom;
    std::function<bool()> m_keepGoing;
    QString m_runFolder;
    RunLog m_log;
    LossCsv m_lossCsv;

    std::unique_ptr<StableDiffusion> m_model;
    std::optional<Hypernetwork> m_hypernetwork;
    std::unique_ptr<Dataset> m_dataset;
    std::unique_ptr<LatentCache> m_latents;
    std::unique_ptr<TrainingOptimizer> m_optimizer;
    std::unique_ptr<LrSchedule> m_schedule;
    DatasetSummary m_summary;
    int64_t m_initialStep = 0;

    std::map<int, at::Tensor> m_conditioningCache;
    // How often each image was drawn so far in this step, over all its micro-batches: an image
    // drawn twice (filler batches of size groups) gets new noise, a timestep and a latent sample.
    std::map<int, uint64_t> m_stepOccurrences;
    int64_t m_batchesEpoch = -1;
    std::vector<std::vector<int>> m_batches;
    QString m_lastPrompt;
    QString m_lastSave;
    int64_t m_lastSaveStep = -1;
    double m_secondsPerStep = 0.0;
};

void TrainingSession::say(const QString& message)
{
    qCInfo(lcTrain).noquote() << message;
    m_log.write(message);
    if (m_callbacks.message) {
        m_callbacks.message(message);
    }
}

void TrainingSession::prepareFolder()
{
    for (const QString& sub : {QStringLiteral("hypernetworks"), QStringLiteral("images")}) {
        if (!QDir().mkpath(QDir(m_runFolder).filePath(sub))) {
            throw Error(QStringLiteral("output.folder: cannot create '%1'; check the path and "
                                       "its permissions")
                            .arg(QDir::toNativeSeparators(QDir(m_runFolder).filePath(sub))));
        }
    }
    m_log.open(Trainer::logPath(m_runFolder));
    writeRunConfig(m_config, Trainer::runJsonPath(m_runFolder));
    const EngineInfo engine = engineInfo();
    say(QStringLiteral("Hypernet Studio %1 (LibTorch %2): training '%3' in '%4'")
            .arg(engine.studioVersion, engine.torchVersion, m_config.hypernetwork.name,
                 QDir::toNativeSeparators(m_runFolder)));
}

void TrainingSession::loadModel()
{
    StableDiffusionOptions options;
    options.checkpointPath = m_config.model.checkpoint;
    options.configPath = m_config.model.config;
    options.tokenizerPath = m_config.model.tokenizer;
    options.clipSkip = m_config.model.clipSkip;
    options.device = parseDevice(m_config.training.device);
    options.dtype = parsePrecision(m_config.training.precision);
    m_model = StableDiffusion::load(options);

    UNetRuntime& runtime = m_model->unet()->runtime();
    runtime.attention = attentionKind(m_config.training.attention);
    runtime.gradientCheckpointing = m_config.training.gradientCheckpointing;
    say(QStringLiteral("model '%1': %2, %3 (config from %4)")
            .arg(QDir::toNativeSeparators(options.checkpointPath),
                 familyName(m_model->config().family),
                 m_model->parameterization() == Parameterization::V ? QStringLiteral("v")
                                                                    : QStringLiteral("eps"),
                 m_model->config().source));
}

void TrainingSession::loadHypernetwork()
{
    const QString source = !m_resumeFrom.isEmpty() ? m_resumeFrom : m_config.hypernetwork.file;
    if (source.isEmpty()) {
        HypernetworkConfig create = m_config.hypernetwork.create;
        create.name = m_config.hypernetwork.name;
        if (!create.initSeed) {
            create.initSeed = streamSeed(m_config.training.seed, {kInitStream});
        }
        m_hypernetwork.emplace(Hypernetwork::create(create));
        say(QStringLiteral("new hypernetwork: %1 parameters")
                .arg(m_hypernetwork->parameterCount()));
    } else {
        m_hypernetwork.emplace(studio::loadHypernetwork(source));
        say(QStringLiteral("continuing '%1' from step %2")
                .arg(QDir::toNativeSeparators(source))
                .arg(m_hypernetwork->config().step));
    }
    m_hypernetwork->config().name = m_config.hypernetwork.name;
    m_initialStep = m_hypernetwork->config().step;
    // The configured strength is for use outside training; training runs at 1 (train mode)
    // and previews force 1, so this value can never change what the run computes.
    m_hypernetwork->setStrength(m_config.hypernetwork.strength);
    m_hypernetwork->to(m_model->device());
    m_hypernetwork->train(true);
    m_model->unet()->runtime().hypernetworks = {&*m_hypernetwork};
}

void TrainingSession::loadDataset()
{
    m_dataset = std::make_unique<Dataset>(m_config.dataset, m_config.hypernetwork.name,
                                          m_config.training.seed, m_model->latentDownsampling());
    for (const SkippedImage& skipped : m_dataset->skipped()) {
        say(QStringLiteral("skipped '%1': %2")
                .arg(QDir::toNativeSeparators(skipped.path), skipped.reason));
    }
    m_summary = summarizeDataset(m_dataset->size(), m_config.training.batchSize,
                                 m_config.training.gradientAccumulation);
    say(QStringLiteral("dataset: %1 images (%2 skipped), batch %3 x accumulation %4, "
                       "%5 steps per epoch")
            .arg(m_summary.images)
            .arg(m_dataset->skipped().size())
            .arg(m_summary.batchSize)
            .arg(m_summary.gradientAccumulation)
            .arg(m_summary.stepsPerEpoch));

    writeDatasetCsv();

    m_latents = std::make_unique<LatentCache>(*m_dataset, *m_model, m_config.dataset.latentSampling,
                                              m_config.training.seed);
    // Stop and Ctrl-C act between images here too: encoding a large folder takes minutes.
    m_latents->encodeAll([this](int, int) { return m_keepGoing(); });
    say(QStringLiteral("latents encoded (%1 MiB)").arg(m_latents->bytes() / (1024 * 1024)));
}

// dataset.csv: what each image trains as (its caption and size), for the user and the studio.
void TrainingSession::writeDatasetCsv() const
{
    const auto quoted = [](QString text) {
        return QLatin1Char('"') + text.replace(QLatin1Char('"'), QStringLiteral("\"\"")) +
               QLatin1Char('"');
    };
    QString csv = QStringLiteral("file,caption,width,height\n");
    for (const DatasetImage& image : m_dataset->images()) {
        csv += QStringLiteral("%1,%2,%3,%4\n")
                   .arg(quoted(QFileInfo(image.path).fileName()), quoted(image.caption))
                   .arg(image.width)
                   .arg(image.height);
    }
    io::writeFileAtomically(Trainer::datasetCsvPath(m_runFolder), csv.toUtf8());
}

void TrainingSession::prepareOptimizer()
{
    m_schedule = makeLrSchedule(m_config.scheduleSpec(m_initialStep));
    m_optimizer = std::make_unique<TrainingOptimizer>(m_config.training.optimizer,
                                                      m_hypernetwork->parameters(),
                                                      m_schedule->learningRate(m_initialStep));
    const QString source = !m_resumeFrom.isEmpty() ? m_resumeFrom : m_config.hypernetwork.file;
    if (source.isEmpty()) {
        return;
    }
    QString reason;
    const std::optional<OptimizerState> state = loadOptimizerStateFor(source, reason);
    if (!state) {
        say(reason);
        return;
    }
    try {
        m_optimizer->restore(*state);
        say(QStringLiteral("optimizer state restored from '%1'")
                .arg(QDir::toNativeSeparators(optimizerStatePath(source))));
    } catch (const Error& error) {
        say(QStringLiteral("optimizer state not used: %1").arg(error.message()));
    }
}

const std::vector<std::vector<int>>& TrainingSession::batchesOf(int64_t epoch)
{
    if (epoch != m_batchesEpoch) {
        m_batches = m_dataset->epochBatches(epoch, m_summary.batchSize);
        m_batchesEpoch = epoch;
    }
    return m_batches;
}

at::Tensor TrainingSession::conditioning(const std::vector<int>& batch, int64_t epoch)
{
    m_lastPrompt = m_dataset->prompt(batch.front(), epoch);
    if (m_dataset->promptsVary()) {
        QStringList prompts;
        for (int index : batch) {
            prompts << m_dataset->prompt(index, epoch);
        }
        return m_model->encodePrompts(prompts);
    }

    // Fixed prompts: each image's conditioning is computed once, alone (as the webui does).
    std::vector<at::Tensor> conds;
    for (int index : batch) {
        auto cached = m_conditioningCache.find(index);
        if (cached == m_conditioningCache.end()) {
            const at::Tensor cond = m_model->encodePrompts({m_dataset->prompt(index, epoch)});
            cached = m_conditioningCache.emplace(index, cond[0].to(at::kCPU)).first;
        }
        conds.push_back(cached->second);
    }
    return stackConditionings(conds).to(m_model->device());
}

at::Tensor TrainingSession::microBatchLoss(int64_t step, int64_t epoch,
                                           const std::vector<int>& batch)
{
    const uint64_t seed = m_config.training.seed;
    std::vector<at::Tensor> latents;
    std::vector<at::Tensor> noises;
    std::vector<at::Tensor> timesteps;
    for (int index : batch) {
        const uint64_t occurrence = m_stepOccurrences[index]++;
        const auto image = static_cast<uint64_t>(index);
        const auto stepKey = static_cast<uint64_t>(step);
        const bool flip = m_dataset->flipped(index, epoch);
        const at::Tensor latent = m_latents->latent(
            index, flip, streamSeed(seed, {kLatentStream, stepKey, image, occurrence}));
        at::Generator generator =
            makeGenerator(streamSeed(seed, {kNoiseStream, stepKey, image, occurrence}));
        latents.push_back(latent);
        noises.push_back(at::randn(latent.sizes(), generator, at::kFloat));
        timesteps.push_back(m_model->schedule().sampleTimesteps(1, generator));
    }

    const c10::Device device = m_model->device();
    const at::Tensor x0 = at::stack(latents).to(device);
    const at::Tensor noise = at::stack(noises).to(device);
    const at::Tensor t = at::cat(timesteps).to(device);
    const at::Tensor cond = conditioning(batch, epoch);

    const NoiseSchedule& schedule = m_model->schedule();
    const at::Tensor noisy = schedule.qSample(x0, t, noise);
    const at::Tensor target = schedule.trainingTarget(m_model->parameterization(), x0, noise, t);
    const at::Tensor prediction = m_model->denoise(noisy, t, cond);
    return at::mse_loss(prediction, target);
}

double TrainingSession::trainStep(int64_t step, bool& finite)
{
    const int64_t epoch = step / m_summary.stepsPerEpoch;
    const int64_t firstMicroBatch =
        (step % m_summary.stepsPerEpoch) * m_summary.gradientAccumulation;
    const std::vector<std::vector<int>>& batches = batchesOf(epoch);
    const int accumulation = m_summary.gradientAccumulation;

    double loss = 0.0;
    finite = true;
    m_stepOccurrences.clear();
    for (int j = 0; j < accumulation; ++j) {
        seedDefaultGenerator(
            m_model->device(),
            streamSeed(m_config.training.seed,
                       {kDropoutStream, static_cast<uint64_t>(step), static_cast<uint64_t>(j)}));
        const std::vector<int>& batch = batches.at(static_cast<size_t>(firstMicroBatch + j));
        const at::Tensor microLoss = microBatchLoss(step, epoch, batch);
        const double value = microLoss.item<double>();
        if (!std::isfinite(value)) {
            finite = false;
            return value;
        }
        (microLoss / accumulation).backward();
        loss += value / accumulation;
    }
    return loss;
}

void TrainingSession::clipGradients()
{
    // On the true gradients: there is no loss scaling to undo in fp32, and with fp16 weights
    // the hypernetwork still trains in fp32 without a scaler (documented in run-config.md).
    const std::vector<at::Tensor> parameters = m_hypernetwork->parameters();
    switch (m_config.training.clipGradMode) {
    case ClipGradMode::Norm:
        torch::nn::utils::clip_grad_norm_(parameters, m_config.training.clipGradValue);
        break;
    case ClipGradMode::Value:
        torch::nn::utils::clip_grad_value_(parameters, m_config.training.clipGradValue);
        break;
    case ClipGradMode::None:
        break;
    }
}

namespace {

// One reduction and one device sync for all tensors, not one per tensor: this runs every step.
bool allFinite(const std::vector<at::Tensor>& tensors)
{
    std::vector<at::Tensor> flags;
    flags.reserve(tensors.size());
    for (const at::Tensor& tensor : tensors) {
        if (tensor.defined()) {
            flags.push_back(at::isfinite(tensor).all());
        }
    }
    return flags.empty() || at::stack(flags).all().item<bool>();
}

} // namespace

bool TrainingSession::parametersFinite() const
{
    return allFinite(m_hypernetwork->parameters());
}

bool TrainingSession::gradientsFinite() const
{
    std::vector<at::Tensor> gradients;
    for (const at::Tensor& parameter : m_hypernetwork->parameters()) {
        gradients.push_back(parameter.grad());
    }
    return allFinite(gradients);
}

QString TrainingSession::save(int64_t stepsDone)
{
    const QString name = m_config.hypernetwork.name;
    const QString path =
        QDir(m_runFolder)
            .filePath(QStringLiteral("hypernetworks/%1-%2.pt").arg(name).arg(stepsDone));

    HypernetworkConfig& config = m_hypernetwork->config();
    config.name = name;
    config.step = stepsDone;
    config.sdCheckpoint = m_model->checkpointShortHash();
    config.sdCheckpointName = m_model->checkpointName();
    saveHypernetwork(*m_hypernetwork, path);
    if (m_config.output.saveOptimizer) {
        saveOptimizerStateFor(m_optimizer->capture(), path);
    }

    m_lastSave = path;
    m_lastSaveStep = stepsDone;
    say(QStringLiteral("saved '%1'").arg(QDir::toNativeSeparators(path)));
    if (m_callbacks.saved) {
        m_callbacks.saved(path);
    }
    return path;
}

void TrainingSession::preview(int64_t stepsDone)
{
    const PreviewSection& settings = m_config.preview;
    GenerationRequest request;
    request.prompt = settings.prompt.isEmpty() ? m_lastPrompt : settings.prompt;
    request.negativePrompt = settings.negativePrompt;
    request.seed =
        settings.seed >= 0
            ? settings.seed
            : static_cast<int64_t>(streamSeed(m_config.training.seed,
                                              {kPreviewStream, static_cast<uint64_t>(stepsDone)}) &
                                   0x7fffffffULL);
    request.sampler.kind = settings.sampler;
    request.sampler.steps = settings.steps;
    request.sampler.cfgScale = settings.cfgScale;
    request.width = settings.width > 0 ? settings.width : m_config.dataset.width;
    request.height = settings.height > 0 ? settings.height : m_config.dataset.height;

    GeneratedImages images;
    {
        const PreviewIsolation isolation(*m_hypernetwork, *m_optimizer, m_model->device(),
                                         m_config.training.unloadOptimizer);
        torch::NoGradGuard noGrad;
        images = generateImages(*m_model, request, {&*m_hypernetwork},
                                [this](int, int) { return m_keepGoing(); });
    }

    const QString path =
        QDir(m_runFolder)
            .filePath(
                QStringLiteral("images/%1-%2.png").arg(m_config.hypernetwork.name).arg(stepsDone));
    io::writePng(path, images.pixels[0], {{QStringLiteral("parameters"), images.infotexts[0]}});
    say(QStringLiteral("preview '%1'").arg(QDir::toNativeSeparators(path)));
    if (m_callbacks.preview) {
        m_callbacks.preview({stepsDone, path, images.infotexts[0]});
    }
}

StepRecord TrainingSession::record(int64_t stepsDone, double loss, double learningRate,
                                   double seconds)
{
    // Smoothed so the ETA does not jump with every preview or save.
    m_secondsPerStep = m_secondsPerStep == 0.0 ? seconds : 0.9 * m_secondsPerStep + 0.1 * seconds;

    StepRecord record;
    record.step = stepsDone;
    record.totalSteps = m_schedule->endStep();
    record.epoch = (stepsDone - 1) / m_summary.stepsPerEpoch;
    record.epochStep = (stepsDone - 1) % m_summary.stepsPerEpoch;
    record.loss = loss;
    record.learningRate = learningRate;
    record.secondsPerStep = m_secondsPerStep;
    record.etaSeconds = m_secondsPerStep * static_cast<double>(record.totalSteps - stepsDone);
    record.residentBytes = residentBytes();
    return record;
}

TrainingResult TrainingSession::diverged(int64_t step, double loss, double learningRate)
{
    // The weights are those after `step` good updates (the bad step was not applied), so they
    // are saved as the last good state unless that step is already on disk.
    m_optimizer->zeroGrad();
    TrainingResult result;
    result.status = TrainingStatus::Diverged;
    result.stepsDone = step;
    if (parametersFinite() && m_lastSaveStep != step && step > m_initialStep) {
        save(step);
    }
    result.lastSave = m_lastSave;
    result.message =
        QStringLiteral("the loss became %1 at step %2 (learning rate %3): training stopped. "
                       "Lower the learning rate or enable gradient clipping. Last good save: %4")
            .arg(std::isnan(loss) ? QStringLiteral("NaN") : QStringLiteral("infinite"))
            .arg(step + 1)
            .arg(shortestNumber(learningRate))
            .arg(m_lastSave.isEmpty() ? QStringLiteral("none")
                                      : QDir::toNativeSeparators(m_lastSave));
    say(result.message);
    return result;
}

TrainingResult TrainingSession::run()
{
    prepareFolder();
    loadModel();
    loadHypernetwork();

    TrainingResult result;
    result.stepsDone = m_initialStep;
    if (m_initialStep >= m_config.training.steps) {
        return alreadyTrained(result, m_config.training.steps);
    }
    loadDataset();
    prepareOptimizer();
    m_lossCsv.open(Trainer::lossCsvPath(m_runFolder), m_initialStep);
    const int64_t endStep = m_schedule->endStep();
    if (m_initialStep >= endStep) {
        return alreadyTrained(result, endStep);
    }
    say(QStringLiteral("training from step %1 to %2").arg(m_initialStep).arg(endStep));

    try {
        result = trainSteps(result);
    } catch (const std::exception& error) {
        throw failedAfterSaving(error);
    }

    if (result.status == TrainingStatus::Diverged) {
        return result;
    }
    if (result.stepsDone > m_initialStep && m_lastSaveStep != result.stepsDone) {
        save(result.stepsDone);
    }
    result.lastSave = m_lastSave;
    result.message = result.status == TrainingStatus::Cancelled
                         ? QStringLiteral("stopped at step %1").arg(result.stepsDone)
                         : QStringLiteral("finished at step %1").arg(result.stepsDone);
    say(result.message);
    return result;
}

TrainingResult TrainingSession::alreadyTrained(TrainingResult result, int64_t endStep)
{
    result.message = QStringLiteral("already trained to step %1 of %2; raise "
                                    "training.steps to continue")
                         .arg(m_initialStep)
                         .arg(endStep);
    say(result.message);
    return result;
}

// An error in the middle of a run (out of memory in a preview, a full disk) keeps the steps
// done so far: they are saved when the weights are sound, and the message names the file.
Error TrainingSession::failedAfterSaving(const std::exception& error)
{
    const auto* studioError = dynamic_cast<const Error*>(&error);
    QString message = studioError ? studioError->message() : QString::fromUtf8(error.what());
    const int64_t stepsDone = m_hypernetwork->config().step;
    try {
        if (stepsDone > m_initialStep && m_lastSaveStep != stepsDone && parametersFinite()) {
            save(stepsDone);
        }
    } catch (const std::exception& saveError) {
        say(QStringLiteral("could not save after the error: %1")
                .arg(QString::fromUtf8(saveError.what())));
    }
    message += QStringLiteral(" (training stopped at step %1; last save: %2)")
                   .arg(stepsDone)
                   .arg(m_lastSave.isEmpty() ? QStringLiteral("none")
                                             : QDir::toNativeSeparators(m_lastSave));
    say(message);
    return Error(message);
}

TrainingResult TrainingSession::trainSteps(TrainingResult result)
{
    const int64_t endStep = m_schedule->endStep();
    for (int64_t step = m_initialStep; step < endStep; ++step) {
        if (!m_keepGoing()) {
            result.status = TrainingStatus::Cancelled;
            break;
        }
        const auto started = std::chrono::steady_clock::now();
        const double learningRate = m_schedule->learningRate(step);
        m_optimizer->setLearningRate(learningRate);

        bool finite = true;
        const double loss = trainStep(step, finite);
        if (!finite || !gradientsFinite()) {
            // Checked before the update, so the weights saved are those of the last good step.
            return diverged(step, finite ? std::numeric_limits<double>::infinity() : loss,
                            learningRate);
        }
        clipGradients();
        m_optimizer->step();
        m_optimizer->zeroGrad();
        if (!parametersFinite()) {
            // Finite gradients times a huge rate: the update itself overflowed.
            return diverged(step, std::numeric_limits<double>::infinity(), learningRate);
        }

        const int64_t stepsDone = step + 1;
        result.stepsDone = stepsDone;
        m_hypernetwork->config().step = stepsDone;
        const std::chrono::duration<double> elapsed = std::chrono::steady_clock::now() - started;
        const StepRecord stepRecord = record(stepsDone, loss, learningRate, elapsed.count());
        m_lossCsv.append(stepRecord);
        if (m_callbacks.step) {
            m_callbacks.step(stepRecord);
        }
        saveAndPreviewAfter(stepsDone);
    }
    return result;
}

void TrainingSession::saveAndPreviewAfter(int64_t stepsDone)
{
    const OutputSection& output = m_config.output;
    const bool cycleEnd = m_schedule->isCycleEnd(stepsDone);
    if ((output.saveEvery > 0 && stepsDone % output.saveEvery == 0) ||
        (output.saveAtCycleEnd && cycleEnd)) {
        save(stepsDone);
    }
    if ((output.previewEvery > 0 && stepsDone % output.previewEvery == 0) ||
        (output.previewAtCycleEnd && cycleEnd)) {
        try {
            preview(stepsDone);
        } catch (const Error& error) {
            if (m_keepGoing()) {
                throw;
            }
            say(QStringLiteral("preview at step %1 cancelled").arg(stepsDone));
        }
    }
}

} // namespace

DatasetSummary summarizeDataset(int images, int batchSize, int gradientAccumulation)
{
    DatasetSummary summary;
    summary.images = images;
    // As the webui: a batch larger than the dataset shrinks to it, and accumulation to what
    // one epoch can fill, so every step has its micro-batches within one epoch.
    summary.batchSize = std::max(1, std::min(batchSize, images));
    summary.gradientAccumulation =
        std::max(1, std::min(gradientAccumulation, images / summary.batchSize));
    summary.stepsPerEpoch =
        std::max<int64_t>(1, images / summary.batchSize / summary.gradientAccumulation);
    return summary;
}

Trainer::Trainer(RunConfig config, TrainerCallbacks callbacks, QString resumeFrom)
    : m_config(std::move(config)), m_callbacks(std::move(callbacks)),
      m_resumeFrom(std::move(resumeFrom))
{
}

Trainer::~Trainer() = default;

TrainingResult Trainer::run()
{
    validateRunConfig(m_config);
    TrainingSession session(m_config, m_callbacks, m_resumeFrom,
                            [this] { return waitWhilePaused(); });
    return session.run();
}

void Trainer::cancel()
{
    m_cancelled.store(true);
}

void Trainer::setPaused(bool paused)
{
    {
        std::lock_guard<std::mutex> lock(m_pauseMutex);
        m_paused.store(paused);
    }
    m_pauseChanged.notify_all();
}

bool Trainer::waitWhilePaused()
{
    std::unique_lock<std::mutex> lock(m_pauseMutex);
    // cancel() cannot notify (it may run in a signal handler), so the wait wakes up to look.
    while (m_paused.load() && !m_cancelled.load()) {
        m_pauseChanged.wait_for(lock, std::chrono::milliseconds(100));
    }
    return !m_cancelled.load();
}

QString Trainer::lossCsvPath(const QString& runFolder)
{
    return QDir(runFolder).filePath(QStringLiteral("loss.csv"));
}

QString Trainer::logPath(const QString& runFolder)
{
    return QDir(runFolder).filePath(QStringLiteral("train.log"));
}

QString Trainer::datasetCsvPath(const QString& runFolder)
{
    return QDir(runFolder).filePath(QStringLiteral("dataset.csv"));
}

QString Trainer::runJsonPath(const QString& runFolder)
{
    return QDir(runFolder).filePath(QStringLiteral("run.json"));
}

} // namespace studio
