#include "ui/RunForm.h"

#include "core/EngineInfo.h"
#include "core/Error.h"
#include "core/data/DatasetPreview.h"
#include "core/diffusion/ImageGenerator.h"
#include "core/hypernetwork/ActivationNames.h"
#include "core/hypernetwork/HypernetworkTools.h"
#include "core/train/Trainer.h"
#include "ui/Background.h"

#include <QButtonGroup>
#include <QCheckBox>
#include <QComboBox>
#include <QDir>
#include <QFileDialog>
#include <QFileInfo>
#include <QFormLayout>
#include <QGroupBox>
#include <QHBoxLayout>
#include <QImage>
#include <QImageReader>
#include <QJsonArray>
#include <QLabel>
#include <QLineEdit>
#include <QListWidget>
#include <QLocale>
#include <QPushButton>
#include <QRadioButton>
#include <QRegularExpression>
#include <QScrollArea>
#include <QSpinBox>
#include <QToolButton>
#include <QVBoxLayout>

#include <algorithm>
#include <climits>
#include <cmath>

namespace studio::ui {

namespace {

// Typing is quiet for this long before the form is read again.
constexpr int kRefreshDelayMs = 150;
// Rescanning a folder decodes every image, so it waits for a longer pause.
constexpr int kScanDelayMs = 400;
constexpr int kMaxThumbnails = 200;
constexpr int kThumbnailSide = 96;

const QString kCheckpointFilter = QStringLiteral("Checkpoints (*.safetensors *.ckpt)");
const QString kHypernetworkFilter = QStringLiteral("Hypernetworks (*.pt)");
// The item data of a choice that the run file writes as null (no activation).
const QString kNullChoice = QStringLiteral("<null>");

// Stand-ins for the four required fields, so that one section can be checked on its own: the
// learning-rate curve is drawn before a model or a dataset has been chosen.
QJsonObject placeholderRun()
{
    return {
        {QStringLiteral("model"),
         QJsonObject{{QStringLiteral("checkpoint"), QStringLiteral("model.safetensors")}}},
        {QStringLiteral("hypernetwork"),
         QJsonObject{{QStringLiteral("name"), QStringLiteral("preview")}}},
        {QStringLiteral("dataset"), QJsonObject{{QStringLiteral("folder"), QStringLiteral(".")}}},
        {QStringLiteral("output"), QJsonObject{{QStringLiteral("folder"), QStringLiteral(".")}}}};
}

const WeightInit kWeightInits[] = {WeightInit::Normal, WeightInit::XavierUniform,
                                   WeightInit::XavierNormal, WeightInit::KaimingUniform,
                                   WeightInit::KaimingNormal};

// Which optimizer uses which parameter (docs/run-config.md, training.optimizer).
bool optimizerUses(OptimizerKind kind, const QString& key)
{
    const bool adam = kind == OptimizerKind::AdamW || kind == OptimizerKind::Adam;
    if (key == QLatin1String("beta1") || key == QLatin1String("beta2") ||
        key == QLatin1String("amsgrad")) {
        return adam;
    }
    if (key == QLatin1String("eps")) {
        return kind != OptimizerKind::SGD;
    }
    if (key == QLatin1String("momentum")) {
        return kind == OptimizerKind::SGD || kind == OptimizerKind::RMSprop;
    }
    if (key == QLatin1String("nesterov")) {
        return kind == OptimizerKind::SGD;
    }
    if (key == QLatin1String("alpha")) {
        return kind == OptimizerKind::RMSprop;
    }
    return true; // weight_decay
}

QJsonValue valueAt(const QJsonObject& root, const QString& path)
{
    const QStringList keys = path.split(QLatin1Char('.'));
    QJsonValue value = root;
    for (const QString& key : keys) {
        value = value.toObject().value(key);
    }
    return value;
}

void insertAt(QJsonObject& object, const QStringList& keys, const QJsonValue& value)
{
    if (keys.size() == 1) {
        object.insert(keys.front(), value);
        return;
    }
    QJsonObject inner = object.value(keys.front()).toObject();
    insertAt(inner, keys.mid(1), value);
    object.insert(keys.front(), inner);
}

// Whole numbers as such (seeds need all 64 bits), everything else in the shortest form that
// reads back exactly, so that a run file survives a trip through the form unchanged.
QString numberText(const QJsonValue& value)
{
    if (value.toVariant().typeId() == QMetaType::LongLong) {
        return QString::number(value.toInteger());
    }
    return QString::number(value.toDouble(), 'g', QLocale::FloatingPointShortest);
}

// Lists (sizes, layer and dropout structures) in the text form the run file also accepts.
QString listText(const QJsonArray& items)
{
    QStringList texts;
    for (const QJsonValue& item : items) {
        texts << numberText(item);
    }
    return texts.join(QStringLiteral(", "));
}

// The dotted path at the start of a run-file message ("training.steps: ...").
QString fieldOfProblem(const QString& message)
{
    static const QRegularExpression path(QStringLiteral("^([a-z_]+(?:\\.[a-z_0-9]+)*)"
                                                        "(?:\\[\\d+\\])?: "));
    const QRegularExpressionMatch match = path.match(message);
    return match.hasMatch() ? match.captured(1) : QString();
}

// "1 image", "4 images".
QString counted(int64_t count, const QString& one, const QString& many)
{
    return QStringLiteral("%1 %2").arg(count).arg(count == 1 ? one : many);
}

QString absolutePath(const QString& text)
{
    return text.trimmed().isEmpty() ? QString() : QDir::current().absoluteFilePath(text.trimmed());
}

QLabel* infoLabel(QWidget* parent, const QString& objectName)
{
    auto* label = new QLabel(parent);
    label->setObjectName(objectName);
    label->setWordWrap(true);
    label->setTextInteractionFlags(Qt::TextSelectableByMouse);
    return label;
}

void showInfo(QLabel* label, const QString& text, bool problem)
{
    label->setText(text);
    label->setStyleSheet(problem ? QStringLiteral("color: #b00020;") : QString());
}

struct Described
{
    QString text;
    bool ok = false;
};

// Runs `describe` and turns whatever it throws into the text to show.
template <typename Body> Described describeSafely(Body describe)
{
    try {
        return {describe(), true};
    } catch (const Error& error) {
        return {error.message(), false};
    } catch (const std::exception& error) {
        return {QString::fromUtf8(error.what()), false};
    }
}

QString summaryText(const HypernetworkSummary& summary)
{
    const HypernetworkConfig& config = summary.config;
    QStringList sizes;
    for (int size : config.sizes) {
        sizes << QString::number(size);
    }
    return QObject::tr("step %1; sizes %2; layers %3; %4%5; %6 parameters")
        .arg(config.step)
        .arg(sizes.join(QStringLiteral(", ")), formatNumberList(config.layerStructure),
             config.activation.value_or(QStringLiteral("no activation")),
             config.layerNorm ? QObject::tr(", layer norm") : QString())
        .arg(QLocale().toString(static_cast<qlonglong>(summary.parameterCount)));
}

struct DatasetScan
{
    DatasetPreview preview;
    std::vector<QImage> thumbnails;
};

QImage readThumbnail(const QString& path)
{
    QImageReader reader(path);
    reader.setAutoTransform(true);
    const QSize size = reader.size();
    if (size.isValid()) {
        reader.setScaledSize(size.scaled(kThumbnailSide, kThumbnailSide, Qt::KeepAspectRatio));
    }
    return reader.read();
}

DatasetScan scanFolder(const DatasetSection& options, const QString& name, uint64_t seed)
{
    DatasetScan scan;
    scan.preview = previewDataset(options, name, seed);
    for (const DatasetPreviewImage& image : scan.preview.images) {
        if (scan.thumbnails.size() >= static_cast<size_t>(kMaxThumbnails)) {
            break;
        }
        scan.thumbnails.push_back(readThumbnail(image.path));
    }
    return scan;
}

} // namespace

RunForm::RunForm(QWidget* parent) : QWidget(parent)
{
    auto* scroll = new QScrollArea(this);
    scroll->setWidgetResizable(true);
    scroll->setFrameShape(QFrame::NoFrame);
    m_fieldsWidget = buildFields();
    scroll->setWidget(m_fieldsWidget);

    m_derived = infoLabel(this, QStringLiteral("derivedNumbers"));
    m_problem = infoLabel(this, QStringLiteral("validationMessage"));
    m_problem->setStyleSheet(QStringLiteral("color: #b00020;"));

    auto* layout = new QVBoxLayout(this);
    layout->setContentsMargins(0, 0, 0, 0);
    layout->addWidget(scroll, 1);
    layout->addWidget(m_derived);
    layout->addWidget(m_problem);

    for (QTimer* timer : {&m_refreshTimer, &m_datasetTimer, &m_modelTimer, &m_fileTimer}) {
        timer->setSingleShot(true);
    }
    m_refreshTimer.setInterval(kRefreshDelayMs);
    m_datasetTimer.setInterval(kScanDelayMs);
    m_modelTimer.setInterval(kScanDelayMs);
    m_fileTimer.setInterval(kScanDelayMs);
    connect(&m_refreshTimer, &QTimer::timeout, this, &RunForm::refresh);
    connect(&m_datasetTimer, &QTimer::timeout, this, &RunForm::scanDataset);
    connect(&m_modelTimer, &QTimer::timeout, this, &RunForm::describeModel);
    connect(&m_fileTimer, &QTimer::timeout, this, &RunForm::describeHypernetworkFile);

    setRunConfig(RunConfig());
}

// --- building the form -------------------------------------------------------------------------

QWidget* RunForm::buildFields()
{
    auto* fields = new QWidget(this);
    auto* layout = new QVBoxLayout(fields);
    layout->addWidget(buildModelGroup());
    layout->addWidget(buildHypernetworkGroup());
    layout->addWidget(buildDatasetGroup());
    layout->addWidget(buildTrainingGroup());
    layout->addWidget(buildPreviewGroup());
    layout->addWidget(buildOutputGroup());
    layout->addStretch(1);
    return fields;
}

QGroupBox* RunForm::buildModelGroup()
{
    auto* group = new QGroupBox(tr("Model"), this);
    auto* form = new QFormLayout(group);
    addPath(form, QStringLiteral("model.checkpoint"), tr("Checkpoint"),
            tr("The Stable Diffusion 1.x / 2.x checkpoint to train on (.safetensors or .ckpt)."),
            false, kCheckpointFilter);
    m_modelInfo = infoLabel(group, QStringLiteral("modelInfo"));
    form->addRow(QString(), m_modelInfo);
    addPath(form, QStringLiteral("model.config"), tr("Config (YAML)"),
            tr("The model's ldm YAML. Empty: the YAML beside the checkpoint, else detected from "
               "the weights."),
            false, tr("ldm configs (*.yaml *.yml)"));
    addPath(form, QStringLiteral("model.tokenizer"), tr("Tokenizer"),
            tr("The CLIP vocabulary. Empty: searched beside the checkpoint and in the usual "
               "places."),
            false, QString());
    addCount(form, QStringLiteral("model.clip_skip"), tr("CLIP skip"), 0, 12,
             tr("0: the model's own layer. N: the webui's \"Clip skip\" N (1 = last layer)."));
    return group;
}

QGroupBox* RunForm::buildHypernetworkGroup()
{
    auto* group = new QGroupBox(tr("Hypernetwork"), this);
    auto* form = new QFormLayout(group);
    m_hypernetworkForm = form;
    addText(form, QStringLiteral("hypernetwork.name"), tr("Name"),
            tr("Saves are NAME-STEP.pt; [name] in templates becomes this."));

    m_newHypernetwork = new QRadioButton(tr("New"), group);
    m_newHypernetwork->setObjectName(QStringLiteral("newHypernetwork"));
    m_fileHypernetwork = new QRadioButton(tr("From a file"), group);
    m_fileHypernetwork->setObjectName(QStringLiteral("fileHypernetwork"));
    m_fileHypernetwork->setToolTip(tr("A .pt made on the Create page, or a save to continue."));
    auto* modes = new QButtonGroup(group);
    modes->addButton(m_newHypernetwork);
    modes->addButton(m_fileHypernetwork);
    auto* modeRow = new QHBoxLayout;
    modeRow->addWidget(m_newHypernetwork);
    modeRow->addWidget(m_fileHypernetwork);
    modeRow->addStretch(1);
    form->addRow(tr("Start"), modeRow);
    connect(m_fileHypernetwork, &QRadioButton::toggled, this, [this] {
        updateModeWidgets();
        onFieldChanged(QStringLiteral("hypernetwork.file"));
    });

    addPath(form, QStringLiteral("hypernetwork.file"), tr("File"),
            tr("Training continues from this file's step (and its .optim if it matches)."), false,
            kHypernetworkFilter);
    m_fileRow = fieldWidget(QStringLiteral("hypernetwork.file"))->parentWidget();
    m_fileInfo = infoLabel(group, QStringLiteral("hypernetworkFileInfo"));
    form->addRow(QString(), m_fileInfo);
    m_createFields = buildCreateFields();
    form->addRow(m_createFields);
    addNumber(form, QStringLiteral("hypernetwork.strength"), tr("Strength"),
              tr("Stored for use outside training; training and previews always run at 1."));
    return group;
}

QWidget* RunForm::buildCreateFields()
{
    auto* fields = new QWidget(this);
    auto* form = new QFormLayout(fields);
    form->setContentsMargins(0, 0, 0, 0);
    const QString prefix = QStringLiteral("hypernetwork.create.");
    addText(form, prefix + QStringLiteral("sizes"), tr("Sizes"),
            tr("Context widths that get a module pair: 768 SD1 text, 1024 SD2 text, 320/640/1280 "
               "the UNet's self-attention."));
    addText(form, prefix + QStringLiteral("layer_structure"), tr("Layer structure"),
            tr("Width multipliers, first and last 1, e.g. 1, 2, 1."));
    std::vector<Choice> activations{{tr("none"), kNullChoice}};
    for (const QString& name : activationNames()) {
        activations.push_back({name, name});
    }
    addChoice(form, prefix + QStringLiteral("activation"), tr("Activation"), activations,
              tr("After each layer but the last (\"swish\" is Hardswish, as in the webui)."));
    addFlag(form, prefix + QStringLiteral("layer_norm"), tr("Layer normalization"),
            tr("LayerNorm after every layer."));
    addText(form, prefix + QStringLiteral("dropout_structure"), tr("Dropout structure"),
            tr("One probability per layer entry, first and last 0; empty: no dropout."));
    addFlag(form, prefix + QStringLiteral("activate_output"), tr("Activate output"),
            tr("Apply the activation after the last layer too."));
    std::vector<Choice> inits;
    for (WeightInit init : kWeightInits) {
        inits.push_back({weightInitName(init), weightInitName(init)});
    }
    addChoice(form, prefix + QStringLiteral("weight_init"), tr("Weight init"), inits,
              tr("Initialisation of the layers."));
    addNumber(form, prefix + QStringLiteral("init_std"), tr("Init std"),
              tr("Standard deviation of Normal weights and of LayerNorm weights."));
    addWhole(form, prefix + QStringLiteral("init_seed"), tr("Init seed"),
             tr("-1: derived from the training seed."));
    return fields;
}

QGroupBox* RunForm::buildDatasetGroup()
{
    auto* group = new QGroupBox(tr("Dataset"), this);
    auto* form = new QFormLayout(group);
    addPath(form, QStringLiteral("dataset.folder"), tr("Image folder"),
            tr("Training images (png, jpg, webp, bmp). The caption is NAME.txt beside an image, "
               "else its file name."),
            true, QString());

    m_thumbnails = new QListWidget(group);
    m_thumbnails->setObjectName(QStringLiteral("datasetThumbnails"));
    m_thumbnails->setViewMode(QListView::IconMode);
    m_thumbnails->setFlow(QListView::LeftToRight);
    m_thumbnails->setWrapping(false);
    m_thumbnails->setIconSize(QSize(kThumbnailSide, kThumbnailSide));
    m_thumbnails->setFixedHeight(kThumbnailSide + 3 * fontMetrics().height());
    m_thumbnails->setMovement(QListView::Static);
    form->addRow(m_thumbnails);
    m_datasetInfo = infoLabel(group, QStringLiteral("datasetInfo"));
    form->addRow(m_datasetInfo);

    std::vector<Choice> templates;
    for (const QString& name : datasetTemplateNames()) {
        templates.push_back({name, name});
    }
    QComboBox* templateBox =
        addChoice(form, QStringLiteral("dataset.template"), tr("Template"), templates,
                  tr("A built-in template or a .txt file; each line may hold [name] and "
                     "[filewords]."));
    templateBox->setEditable(true);
    addText(form, QStringLiteral("dataset.filename_word_regex"), tr("File-name regex"),
            tr("When set, a caption from a file name is the regex's matches, joined."));
    addText(form, QStringLiteral("dataset.filename_join_string"), tr("Join matches with"),
            tr("Joins the regex's matches."));
    addCount(form, QStringLiteral("dataset.width"), tr("Width"), 8, 8192,
             tr("Training size; with no-crop the box images are fitted into."));
    addCount(form, QStringLiteral("dataset.height"), tr("Height"), 8, 8192,
             tr("Training size; with no-crop the box images are fitted into."));
    addFlag(form, QStringLiteral("dataset.no_crop"), tr("No crop"),
            tr("Keep each image's aspect ratio; sides rounded up to multiples of 64."));
    addNumber(form, QStringLiteral("dataset.flip_probability"), tr("Flip probability"),
              tr("Chance that an image is mirrored, per epoch."));
    addFlag(form, QStringLiteral("dataset.shuffle_tags"), tr("Shuffle tags"),
            tr("Shuffle the comma-separated caption tags every time."));
    addNumber(form, QStringLiteral("dataset.tag_dropout"), tr("Tag dropout"),
              tr("Chance that each tag is left out."));
    addChoice(form, QStringLiteral("dataset.latent_sampling"), tr("Latent sampling"),
              {{tr("once"), latentSamplingName(LatentSampling::Once)},
               {tr("deterministic"), latentSamplingName(LatentSampling::Deterministic)},
               {tr("random"), latentSamplingName(LatentSampling::Random)}},
              tr("once: one posterior sample per image; deterministic: the mean; random: a new "
                 "sample each use."));
    return group;
}

QGroupBox* RunForm::buildTrainingGroup()
{
    auto* group = new QGroupBox(tr("Training"), this);
    auto* form = new QFormLayout(group);
    addCount(form, QStringLiteral("training.steps"), tr("Steps"), 1, INT_MAX,
             tr("Optimizer steps to reach, counting those already in a continued file."));
    addCount(form, QStringLiteral("training.batch_size"), tr("Batch size"), 1, 4096,
             tr("Images per micro-batch."));
    addCount(form, QStringLiteral("training.gradient_accumulation"), tr("Accumulation"), 1, 4096,
             tr("Micro-batches per optimizer step."));
    addWhole(form, QStringLiteral("training.seed"), tr("Seed"),
             tr("Fixes initialisation, data order, prompts, flips, noise and timesteps."));
    form->addRow(buildOptimizerFields());
    form->addRow(buildScheduleFields());
    addChoice(form, QStringLiteral("training.clip_grad.mode"), tr("Gradient clipping"),
              {{tr("none"), QStringLiteral("none")},
               {tr("by norm"), QStringLiteral("norm")},
               {tr("by value"), QStringLiteral("value")}},
              tr("Acts once per optimizer step, on the true gradients."));
    addNumber(form, QStringLiteral("training.clip_grad.value"), tr("Clip limit"),
              tr("The largest total norm, or the largest absolute value."));

    std::vector<Choice> devices;
    for (const QString& device : engineInfo().devices) {
        devices.push_back({device, device});
    }
    addChoice(form, QStringLiteral("training.device"), tr("Device"), devices,
              tr("cpu, cuda or cuda:N."))
        ->setEditable(true);
    addChoice(form, QStringLiteral("training.precision"), tr("Precision"),
              {{QStringLiteral("fp32"), QStringLiteral("fp32")},
               {QStringLiteral("fp16"), QStringLiteral("fp16")},
               {QStringLiteral("bf16"), QStringLiteral("bf16")}},
              tr("Of the frozen model weights (fp16 needs CUDA); the hypernetwork trains in "
                 "fp32."));
    addChoice(form, QStringLiteral("training.attention"), tr("Attention"),
              {{tr("plain"), QStringLiteral("plain")},
               {tr("sliced"), QStringLiteral("sliced")},
               {tr("sdpa"), QStringLiteral("sdpa")}},
              tr("sliced bounds memory with the same results."));
    addFlag(form, QStringLiteral("training.gradient_checkpointing"), tr("Gradient checkpointing"),
            tr("Recompute UNet blocks in the backward pass to save memory."));
    addFlag(form, QStringLiteral("training.unload_optimizer"), tr("Unload optimizer for previews"),
            tr("Move the optimizer state to the CPU while a preview runs on CUDA."));
    return group;
}

QWidget* RunForm::buildOptimizerFields()
{
    auto* fields = new QWidget(this);
    m_optimizerForm = new QFormLayout(fields);
    m_optimizerForm->setContentsMargins(0, 0, 0, 0);
    const QString prefix = QStringLiteral("training.optimizer.");
    std::vector<Choice> kinds;
    for (OptimizerKind kind : {OptimizerKind::AdamW, OptimizerKind::Adam, OptimizerKind::SGD,
                               OptimizerKind::RMSprop, OptimizerKind::Adagrad}) {
        kinds.push_back({optimizerName(kind), optimizerName(kind).toLower()});
    }
    QComboBox* kind = addChoice(m_optimizerForm, prefix + QStringLiteral("name"), tr("Optimizer"),
                                kinds, tr("AdamW with torch's defaults is what the webui uses."));
    connect(kind, &QComboBox::currentIndexChanged, this, &RunForm::onOptimizerChanged);
    addNumber(m_optimizerForm, prefix + QStringLiteral("weight_decay"), tr("Weight decay"), {});
    addNumber(m_optimizerForm, prefix + QStringLiteral("beta1"), tr("Beta 1"), {});
    addNumber(m_optimizerForm, prefix + QStringLiteral("beta2"), tr("Beta 2"), {});
    addNumber(m_optimizerForm, prefix + QStringLiteral("eps"), tr("Epsilon"), {});
    addNumber(m_optimizerForm, prefix + QStringLiteral("momentum"), tr("Momentum"), {});
    addFlag(m_optimizerForm, prefix + QStringLiteral("nesterov"), tr("Nesterov"),
            tr("Needs momentum above 0."));
    addNumber(m_optimizerForm, prefix + QStringLiteral("alpha"), tr("Alpha"),
              tr("RMSprop smoothing."));
    addFlag(m_optimizerForm, prefix + QStringLiteral("amsgrad"), tr("AMSGrad"), {});
    return fields;
}

QWidget* RunForm::buildScheduleFields()
{
    auto* fields = new QWidget(this);
    m_scheduleForm = new QFormLayout(fields);
    m_scheduleForm->setContentsMargins(0, 0, 0, 0);
    const QString prefix = QStringLiteral("training.learning_rate.");
    QComboBox* kind =
        addChoice(m_scheduleForm, prefix + QStringLiteral("schedule"), tr("LR schedule"),
                  {{tr("constant"), QStringLiteral("constant")},
                   {tr("step string (webui)"), QStringLiteral("step_string")},
                   {tr("cosine with warm restarts"), QStringLiteral("cosine")}},
                  {});
    connect(kind, &QComboBox::currentIndexChanged, this, &RunForm::updateScheduleWidgets);
    addNumber(m_scheduleForm, prefix + QStringLiteral("rate"), tr("Learning rate"), {});
    addText(m_scheduleForm, prefix + QStringLiteral("string"), tr("LR string"),
            tr("\"5e-5:100, 5e-6:1500, 5e-7\": 5e-5 for steps 0-99, 5e-6 up to 1499, then 5e-7."));
    const QString cosine = prefix + QStringLiteral("cosine.");
    addCount(m_scheduleForm, cosine + QStringLiteral("cycle_steps"), tr("Cycle steps"), 1, INT_MAX,
             tr("Length of the first cycle in optimizer steps."));
    addNumber(m_scheduleForm, cosine + QStringLiteral("cycle_mult"), tr("Cycle multiplier"),
              tr("Each cycle is this much longer than the one before."));
    addCount(m_scheduleForm, cosine + QStringLiteral("warmup_steps"), tr("Warm-up steps"), 0,
             INT_MAX, tr("Linear warm-up from the minimum at the start of every cycle."));
    addNumber(m_scheduleForm, cosine + QStringLiteral("max_lr"), tr("Peak LR"),
              tr("The first cycle's peak."));
    addNumber(m_scheduleForm, cosine + QStringLiteral("min_lr"), tr("Minimum LR"),
              tr("The floor each cycle descends to."));
    addNumber(m_scheduleForm, cosine + QStringLiteral("decay"), tr("Decay per cycle"),
              tr("Cycle c peaks at peak x decay^c; 1 = no decay."));
    return fields;
}

QGroupBox* RunForm::buildPreviewGroup()
{
    auto* group = new QGroupBox(tr("Previews"), this);
    auto* form = new QFormLayout(group);
    addText(form, QStringLiteral("preview.prompt"), tr("Prompt"),
            tr("Empty: the prompt the first image of the latest batch trained with."));
    addText(form, QStringLiteral("preview.negative_prompt"), tr("Negative prompt"), {});
    addWhole(form, QStringLiteral("preview.seed"), tr("Seed"),
             tr("-1: derived from the training seed and the step."));
    addChoice(form, QStringLiteral("preview.sampler"), tr("Sampler"),
              {{samplerDisplayName(SamplerKind::EulerAncestral),
                samplerName(SamplerKind::EulerAncestral)},
               {samplerDisplayName(SamplerKind::Ddim), samplerName(SamplerKind::Ddim)}},
              {});
    addCount(form, QStringLiteral("preview.steps"), tr("Sampler steps"), 1, 1000, {});
    addNumber(form, QStringLiteral("preview.cfg_scale"), tr("CFG scale"), {});
    addCount(form, QStringLiteral("preview.width"), tr("Width"), 0, 8192,
             tr("0: the training width."));
    addCount(form, QStringLiteral("preview.height"), tr("Height"), 0, 8192,
             tr("0: the training height."));
    return group;
}

QGroupBox* RunForm::buildOutputGroup()
{
    auto* group = new QGroupBox(tr("Output"), this);
    auto* form = new QFormLayout(group);
    addPath(form, QStringLiteral("output.folder"), tr("Run folder"),
            tr("Receives hypernetworks/, images/, loss.csv, run.json and train.log."), true,
            QString());
    addCount(form, QStringLiteral("output.save_every"), tr("Save every"), 0, INT_MAX,
             tr("Steps between saves; 0: only at the end."));
    addCount(form, QStringLiteral("output.preview_every"), tr("Preview every"), 0, INT_MAX,
             tr("Steps between previews; 0: none."));
    addFlag(form, QStringLiteral("output.save_at_cycle_end"), tr("Save at cycle ends"), {});
    addFlag(form, QStringLiteral("output.preview_at_cycle_end"), tr("Preview at cycle ends"), {});
    addFlag(form, QStringLiteral("output.save_optimizer"), tr("Save optimizer state"),
            tr("Write NAME-STEP.pt.optim beside each save, for resuming."));
    return group;
}

QLineEdit* RunForm::addText(QFormLayout* form, const QString& path, const QString& label,
                            const QString& tip)
{
    auto* edit = new QLineEdit(this);
    form->addRow(label, edit);
    registerField(path, Kind::Text, edit, tip);
    connect(edit, &QLineEdit::textChanged, this, [this, path] { onFieldChanged(path); });
    return edit;
}

QLineEdit* RunForm::addNumber(QFormLayout* form, const QString& path, const QString& label,
                              const QString& tip)
{
    QLineEdit* edit = addText(form, path, label, tip);
    m_fields.back().kind = Kind::Number;
    return edit;
}

QLineEdit* RunForm::addWhole(QFormLayout* form, const QString& path, const QString& label,
                             const QString& tip)
{
    QLineEdit* edit = addText(form, path, label, tip);
    m_fields.back().kind = Kind::Whole;
    return edit;
}

QSpinBox* RunForm::addCount(QFormLayout* form, const QString& path, const QString& label,
                            int minimum, int maximum, const QString& tip)
{
    auto* spin = new QSpinBox(this);
    spin->setRange(minimum, maximum);
    form->addRow(label, spin);
    registerField(path, Kind::Count, spin, tip);
    connect(spin, &QSpinBox::valueChanged, this, [this, path] { onFieldChanged(path); });
    return spin;
}

QCheckBox* RunForm::addFlag(QFormLayout* form, const QString& path, const QString& label,
                            const QString& tip)
{
    auto* check = new QCheckBox(label, this);
    form->addRow(QString(), check);
    registerField(path, Kind::Flag, check, tip);
    connect(check, &QCheckBox::toggled, this, [this, path] { onFieldChanged(path); });
    return check;
}

QComboBox* RunForm::addChoice(QFormLayout* form, const QString& path, const QString& label,
                              const std::vector<Choice>& choices, const QString& tip)
{
    auto* combo = new QComboBox(this);
    for (const Choice& choice : choices) {
        combo->addItem(choice.label, choice.value);
    }
    form->addRow(label, combo);
    registerField(path, Kind::Choice, combo, tip);
    connect(combo, &QComboBox::currentTextChanged, this, [this, path] { onFieldChanged(path); });
    return combo;
}

QLineEdit* RunForm::addPath(QFormLayout* form, const QString& path, const QString& label,
                            const QString& tip, bool folder, const QString& filter)
{
    auto* row = new QWidget(this);
    auto* edit = new QLineEdit(row);
    auto* button = new QToolButton(row);
    button->setText(tr("…"));
    button->setToolTip(folder ? tr("Choose a folder") : tr("Choose a file"));
    auto* layout = new QHBoxLayout(row);
    layout->setContentsMargins(0, 0, 0, 0);
    layout->addWidget(edit, 1);
    layout->addWidget(button);
    form->addRow(label, row);

    registerField(path, Kind::Text, edit, tip);
    connect(edit, &QLineEdit::textChanged, this, [this, path] { onFieldChanged(path); });
    connect(button, &QToolButton::clicked, this,
            [this, edit, folder, filter] { browse(edit, folder, filter); });
    return edit;
}

void RunForm::registerField(const QString& path, Kind kind, QWidget* widget, const QString& tip)
{
    widget->setObjectName(path);
    widget->setToolTip(tip.isEmpty() ? path
                                     : tip + QStringLiteral("\n(") + path + QLatin1Char(')'));
    m_fields.push_back({path, kind, widget});
}

void RunForm::browse(QLineEdit* edit, bool folder, const QString& filter)
{
    const QString start = absolutePath(edit->text());
    const QString chosen =
        folder ? QFileDialog::getExistingDirectory(this, tr("Choose a folder"), start)
               : QFileDialog::getOpenFileName(this, tr("Choose a file"), start, filter);
    if (!chosen.isEmpty()) {
        edit->setText(QDir::toNativeSeparators(chosen));
    }
}

// --- widgets and JSON --------------------------------------------------------------------------

QWidget* RunForm::fieldWidget(const QString& path) const
{
    for (const Field& field : m_fields) {
        if (field.path == path) {
            return field.widget;
        }
    }
    return nullptr;
}

QJsonValue RunForm::fieldValue(const Field& field, QString& problem) const
{
    switch (field.kind) {
    case Kind::Text:
        return static_cast<const QLineEdit*>(field.widget)->text();
    case Kind::Number: {
        const QString text = static_cast<const QLineEdit*>(field.widget)->text().trimmed();
        bool ok = false;
        const double value = QLocale::c().toDouble(text, &ok);
        if (!ok) {
            problem = tr("'%1' is not a number; write one such as 0.5 or 1e-5").arg(text);
        }
        return value;
    }
    case Kind::Whole: {
        const QString text = static_cast<const QLineEdit*>(field.widget)->text().trimmed();
        bool ok = false;
        const qint64 value = text.toLongLong(&ok);
        if (!ok) {
            problem = tr("'%1' is not a whole number; write one such as 42").arg(text);
        }
        return value;
    }
    case Kind::Count:
        return static_cast<const QSpinBox*>(field.widget)->value();
    case Kind::Flag:
        return static_cast<const QCheckBox*>(field.widget)->isChecked();
    case Kind::Choice: {
        const auto* combo = static_cast<const QComboBox*>(field.widget);
        const int index =
            combo->isEditable() ? combo->findText(combo->currentText()) : combo->currentIndex();
        if (index < 0) {
            return combo->currentText(); // typed into an editable box
        }
        const QString value = combo->itemData(index).toString();
        return value == kNullChoice ? QJsonValue(QJsonValue::Null) : QJsonValue(value);
    }
    }
    return {};
}

void RunForm::setFieldValue(const Field& field, const QJsonValue& value)
{
    switch (field.kind) {
    case Kind::Text:
        static_cast<QLineEdit*>(field.widget)
            ->setText(value.isArray() ? listText(value.toArray()) : value.toString());
        return;
    case Kind::Number:
    case Kind::Whole:
        static_cast<QLineEdit*>(field.widget)->setText(numberText(value));
        return;
    case Kind::Count:
        static_cast<QSpinBox*>(field.widget)->setValue(value.toInt());
        return;
    case Kind::Flag:
        static_cast<QCheckBox*>(field.widget)->setChecked(value.toBool());
        return;
    case Kind::Choice:
        break;
    }

    auto* combo = static_cast<QComboBox*>(field.widget);
    const QString name = value.isNull() ? kNullChoice : value.toString();
    int index = combo->findData(name, Qt::UserRole, Qt::MatchFixedString);
    if (index < 0) {
        // A name the list does not offer (a template file, a device): shown as it is.
        combo->addItem(name, name);
        index = combo->count() - 1;
    }
    combo->setCurrentIndex(index);
}

QJsonObject RunForm::fieldsJson(QString& problem, QString& problemField) const
{
    QJsonObject json{{QStringLiteral("version"), RunConfig::kVersion}};
    for (const Field& field : m_fields) {
        QString fieldProblem;
        QJsonValue value = fieldValue(field, fieldProblem);
        if (!fieldProblem.isEmpty()) {
            if (problem.isEmpty()) {
                problem = field.path + QStringLiteral(": ") + fieldProblem;
                problemField = field.path;
            }
            continue; // the key is left out, so the sections around it can still be read
        }
        if (field.path == QLatin1String("hypernetwork.file") && m_newHypernetwork->isChecked()) {
            value = QString();
        }
        insertAt(json, field.path.split(QLatin1Char('.')), value);
    }
    return json;
}

std::optional<LrScheduleSpec> RunForm::scheduleOf(const QJsonObject& json) const
{
    QJsonObject trainingOnly = placeholderRun();
    trainingOnly.insert(QStringLiteral("training"), json.value(QStringLiteral("training")));
    try {
        const RunConfig config = runConfigFromJson(trainingOnly, QString(), QDir::currentPath());
        if (m_continuedStep >= config.training.steps) {
            return std::nullopt; // nothing left to train; the plan is empty
        }
        return config.scheduleSpec(m_continuedStep);
    } catch (const Error&) {
        return std::nullopt;
    }
}

void RunForm::setRunConfig(const RunConfig& config)
{
    m_loading = true;
    const QJsonObject json = runConfigToJson(config);
    for (const Field& field : m_fields) {
        setFieldValue(field, valueAt(json, field.path));
    }
    m_fileHypernetwork->setChecked(!config.hypernetwork.file.isEmpty());
    m_newHypernetwork->setChecked(config.hypernetwork.file.isEmpty());
    m_previousOptimizer = valueAt(json, QStringLiteral("training.optimizer.name")).toString();
    m_loading = false;

    updateModeWidgets();
    updateOptimizerWidgets();
    updateScheduleWidgets();
    describeModel();
    describeHypernetworkFile();
    scanDataset();
    refresh();
}

FormReading RunForm::read() const
{
    FormReading reading;
    const QJsonObject json = fieldsJson(reading.problem, reading.field);
    if (!reading.field.startsWith(QLatin1String("training."))) {
        reading.schedule = scheduleOf(json);
    }
    if (!reading.problem.isEmpty()) {
        return reading;
    }
    try {
        reading.config = runConfigFromJson(json, QString(), QDir::currentPath());
    } catch (const Error& error) {
        reading.problem = error.message();
        reading.field = fieldOfProblem(reading.problem);
    }
    return reading;
}

// --- reacting to edits -------------------------------------------------------------------------

void RunForm::onFieldChanged(const QString& path)
{
    if (m_loading) {
        return;
    }
    m_refreshTimer.start();
    if (path.startsWith(QLatin1String("dataset.")) || path == QLatin1String("hypernetwork.name") ||
        path == QLatin1String("training.seed")) {
        m_datasetTimer.start();
    }
    if (path == QLatin1String("model.checkpoint") || path == QLatin1String("model.config")) {
        m_modelTimer.start();
    }
    if (path == QLatin1String("hypernetwork.file")) {
        m_fileTimer.start();
    }
    if (path == QLatin1String("training.clip_grad.mode")) {
        updateOptimizerWidgets();
    }
}

void RunForm::refresh()
{
    m_refreshTimer.stop();
    const FormReading reading = read();
    showProblem(reading.field, reading.problem);
    m_derived->setText(derivedText());
    Q_EMIT changed();
}

void RunForm::showProblem(const QString& field, const QString& message)
{
    if (m_problemWidget != nullptr) {
        m_problemWidget->setStyleSheet(QString());
    }
    m_problemWidget = message.isEmpty() ? nullptr : fieldWidget(field);
    if (m_problemWidget != nullptr) {
        m_problemWidget->setStyleSheet(QStringLiteral("background-color: #fde7e9;"));
    }
    m_problem->setText(message);
    m_problem->setVisible(!message.isEmpty());
}

QString RunForm::shownProblem() const
{
    return m_problem->text();
}

void RunForm::updateModeWidgets()
{
    const bool fromFile = m_fileHypernetwork->isChecked();
    m_hypernetworkForm->setRowVisible(m_fileRow, fromFile);
    m_hypernetworkForm->setRowVisible(m_fileInfo, fromFile);
    m_hypernetworkForm->setRowVisible(m_createFields, !fromFile);
}

void RunForm::updateOptimizerWidgets()
{
    const QString prefix = QStringLiteral("training.optimizer.");
    const auto* name = static_cast<QComboBox*>(fieldWidget(prefix + QStringLiteral("name")));
    const OptimizerKind kind = parseOptimizerKind(name->currentData().toString());
    for (const char* key :
         {"weight_decay", "beta1", "beta2", "eps", "momentum", "nesterov", "alpha", "amsgrad"}) {
        QWidget* widget = fieldWidget(prefix + QLatin1String(key));
        m_optimizerForm->setRowVisible(widget, optimizerUses(kind, QLatin1String(key)));
    }

    const auto* clip =
        static_cast<QComboBox*>(fieldWidget(QStringLiteral("training.clip_grad.mode")));
    fieldWidget(QStringLiteral("training.clip_grad.value"))
        ->setEnabled(clip->currentData().toString() != QLatin1String("none"));
}

void RunForm::onOptimizerChanged()
{
    if (m_loading) {
        return;
    }
    // A weight decay still at the old optimizer's default follows to the new one's, as a run
    // file that leaves it out would.
    const QString prefix = QStringLiteral("training.optimizer.");
    const auto* name = static_cast<QComboBox*>(fieldWidget(prefix + QStringLiteral("name")));
    auto* decay = static_cast<QLineEdit*>(fieldWidget(prefix + QStringLiteral("weight_decay")));
    const OptimizerKind now = parseOptimizerKind(name->currentData().toString());
    const OptimizerKind before = parseOptimizerKind(m_previousOptimizer);
    bool ok = false;
    const double value = QLocale::c().toDouble(decay->text(), &ok);
    if (ok && value == defaultWeightDecay(before)) {
        decay->setText(numberText(defaultWeightDecay(now)));
    }
    m_previousOptimizer = name->currentData().toString();
    updateOptimizerWidgets();
}

void RunForm::updateScheduleWidgets()
{
    const QString prefix = QStringLiteral("training.learning_rate.");
    const auto* kind = static_cast<QComboBox*>(fieldWidget(prefix + QStringLiteral("schedule")));
    const QString schedule = kind->currentData().toString();
    m_scheduleForm->setRowVisible(fieldWidget(prefix + QStringLiteral("rate")),
                                  schedule == QLatin1String("constant"));
    m_scheduleForm->setRowVisible(fieldWidget(prefix + QStringLiteral("string")),
                                  schedule == QLatin1String("step_string"));
    for (const char* key :
         {"cycle_steps", "cycle_mult", "warmup_steps", "max_lr", "min_lr", "decay"}) {
        m_scheduleForm->setRowVisible(
            fieldWidget(prefix + QStringLiteral("cosine.") + QLatin1String(key)),
            schedule == QLatin1String("cosine"));
    }
}

void RunForm::setFieldsEnabled(bool enabled)
{
    m_fieldsWidget->setEnabled(enabled);
}

void RunForm::useHypernetworkFile(const QString& path)
{
    static_cast<QLineEdit*>(fieldWidget(QStringLiteral("hypernetwork.file")))->setText(path);
    m_fileHypernetwork->setChecked(true);
    describeHypernetworkFile();
    refresh();
}

// --- derived numbers ---------------------------------------------------------------------------

DerivedNumbers RunForm::derivedNumbers() const
{
    const auto count = [this](const char* path) {
        return static_cast<const QSpinBox*>(fieldWidget(QLatin1String(path)))->value();
    };
    DerivedNumbers numbers;
    numbers.batchSize = count("training.batch_size");
    numbers.gradientAccumulation = count("training.gradient_accumulation");
    numbers.datasetImages = m_datasetImages;
    if (m_datasetImages > 0) {
        // As training will: a batch larger than the dataset shrinks to it, and so on.
        const DatasetSummary summary =
            summarizeDataset(m_datasetImages, numbers.batchSize, numbers.gradientAccumulation);
        numbers.batchSize = summary.batchSize;
        numbers.gradientAccumulation = summary.gradientAccumulation;
        numbers.stepsPerEpoch = summary.stepsPerEpoch;
    }
    numbers.imagesPerStep = numbers.batchSize * numbers.gradientAccumulation;

    const auto* schedule = static_cast<const QComboBox*>(
        fieldWidget(QStringLiteral("training.learning_rate.schedule")));
    if (schedule->currentData().toString() == QLatin1String("cosine") &&
        numbers.stepsPerEpoch > 0) {
        numbers.cycleEpochs =
            static_cast<double>(count("training.learning_rate.cosine.cycle_steps")) /
            static_cast<double>(numbers.stepsPerEpoch);
    }
    return numbers;
}

QString RunForm::derivedText() const
{
    const DerivedNumbers numbers = derivedNumbers();
    QStringList lines;
    lines << tr("%1 per step (batch %2 × accumulation %3)")
                 .arg(counted(numbers.imagesPerStep, tr("image"), tr("images")))
                 .arg(numbers.batchSize)
                 .arg(numbers.gradientAccumulation);
    if (numbers.stepsPerEpoch > 0) {
        lines << tr("%1 per epoch (%2)")
                     .arg(counted(numbers.stepsPerEpoch, tr("step"), tr("steps")),
                          counted(numbers.datasetImages, tr("image"), tr("images")));
    } else {
        lines << tr("steps per epoch: known once the dataset folder has been read");
    }
    if (numbers.cycleEpochs > 0.0) {
        lines << tr("the first cosine cycle lasts %1 epochs")
                     .arg(QString::number(numbers.cycleEpochs, 'g', 4));
    }
    return lines.join(QLatin1Char('\n'));
}

// --- background jobs ---------------------------------------------------------------------------

void RunForm::describeModel()
{
    m_modelTimer.stop();
    const quint64 request = ++m_modelRequest;
    const QString checkpoint = absolutePath(
        static_cast<QLineEdit*>(fieldWidget(QStringLiteral("model.checkpoint")))->text());
    const QString config =
        absolutePath(static_cast<QLineEdit*>(fieldWidget(QStringLiteral("model.config")))->text());
    if (checkpoint.isEmpty()) {
        showInfo(m_modelInfo, tr("Choose a .safetensors or .ckpt checkpoint."), false);
        return;
    }

    showInfo(m_modelInfo, tr("Reading the checkpoint…"), false);
    runInBackground(
        this,
        [checkpoint, config] {
            return describeSafely([&] { return describeCheckpoint(checkpoint, config); });
        },
        [this, request](const Described& described) {
            if (request != m_modelRequest) {
                return; // the checkpoint changed meanwhile
            }
            showInfo(m_modelInfo, described.text, !described.ok);
            Q_EMIT modelDescribed();
        });
}

void RunForm::describeHypernetworkFile()
{
    m_fileTimer.stop();
    const quint64 request = ++m_fileRequest;
    const QString path = absolutePath(
        static_cast<QLineEdit*>(fieldWidget(QStringLiteral("hypernetwork.file")))->text());
    if (!m_fileHypernetwork->isChecked() || path.isEmpty()) {
        m_continuedStep = 0;
        showInfo(m_fileInfo, tr("Choose a hypernetwork .pt file."), false);
        return;
    }

    showInfo(m_fileInfo, tr("Reading the file…"), false);
    runInBackground(
        this,
        [path] {
            int64_t step = 0;
            Described described = describeSafely([&] {
                const HypernetworkSummary summary = summarizeHypernetworkFile(path);
                step = summary.config.step;
                return summaryText(summary);
            });
            return std::make_pair(described, step);
        },
        [this, request](const std::pair<Described, int64_t>& result) {
            if (request != m_fileRequest) {
                return;
            }
            showInfo(m_fileInfo, result.first.text, !result.first.ok);
            m_continuedStep = result.first.ok ? result.second : 0;
            refresh(); // the learning-rate plan starts at the file's step
            Q_EMIT hypernetworkFileDescribed();
        });
}

void RunForm::scanDataset()
{
    m_datasetTimer.stop();
    const quint64 request = ++m_datasetRequest;
    m_datasetImages = -1;
    QString problem;
    QString problemField;
    QJsonObject datasetOnly = placeholderRun();
    const QJsonObject json = fieldsJson(problem, problemField);
    datasetOnly.insert(QStringLiteral("dataset"), json.value(QStringLiteral("dataset")));
    const QString folder = valueAt(json, QStringLiteral("dataset.folder")).toString();
    if (folder.trimmed().isEmpty()) {
        m_thumbnails->clear();
        showInfo(m_datasetInfo, tr("Choose the folder of training images."), false);
        return;
    }

    DatasetSection options;
    try {
        options = runConfigFromJson(datasetOnly, QString(), QDir::currentPath()).dataset;
    } catch (const Error& error) {
        m_thumbnails->clear();
        showInfo(m_datasetInfo, error.message(), true);
        return;
    }
    const QString name = valueAt(json, QStringLiteral("hypernetwork.name")).toString();
    const uint64_t seed = static_cast<uint64_t>(
        std::max<qint64>(0, valueAt(json, QStringLiteral("training.seed")).toInteger()));

    showInfo(m_datasetInfo, tr("Reading the images…"), false);
    runInBackground(
        this, [options, name, seed] { return scanFolder(options, name, seed); },
        [this, request](const DatasetScan& scan) {
            if (request == m_datasetRequest) {
                showDataset(scan.preview, scan.thumbnails);
            }
        });
}

void RunForm::showDataset(const DatasetPreview& preview, const std::vector<QImage>& thumbnails)
{
    m_thumbnails->clear();
    m_captions.clear();
    m_prompts.clear();
    for (size_t i = 0; i < preview.images.size(); ++i) {
        const DatasetPreviewImage& image = preview.images[i];
        auto* item = new QListWidgetItem(m_thumbnails);
        if (i < thumbnails.size() && !thumbnails[i].isNull()) {
            item->setIcon(QIcon(QPixmap::fromImage(thumbnails[i])));
        }
        const int textWidth = kThumbnailSide + 24;
        item->setText(fontMetrics().elidedText(image.caption, Qt::ElideRight, textWidth));
        item->setToolTip(tr("%1\ncaption: %2\nprompt: %3\n%4×%5, trains at %6×%7")
                             .arg(QFileInfo(image.path).fileName(), image.caption, image.prompt)
                             .arg(image.sourceWidth)
                             .arg(image.sourceHeight)
                             .arg(image.width)
                             .arg(image.height));
        m_captions << image.caption;
        m_prompts << image.prompt;
    }

    if (!preview.error.isEmpty()) {
        m_datasetImages = -1;
        showInfo(m_datasetInfo, preview.error, true);
    } else {
        m_datasetImages = static_cast<int>(preview.images.size());
        QString text = counted(m_datasetImages, tr("image"), tr("images"));
        if (!preview.skipped.isEmpty()) {
            text += tr("; %1 skipped: %2")
                        .arg(preview.skipped.size())
                        .arg(preview.skipped.join(QStringLiteral("; ")));
        }
        text += tr("; the template has %1")
                    .arg(counted(preview.templateLines.size(), tr("line"), tr("lines")));
        if (preview.promptsVary) {
            text += tr("; prompts change every epoch (tag shuffle or dropout): the first shown");
        }
        showInfo(m_datasetInfo, text, false);
    }
    m_derived->setText(derivedText());
    Q_EMIT datasetScanned();
}

int RunForm::datasetImageCount() const
{
    return m_datasetImages;
}

QStringList RunForm::datasetCaptions() const
{
    return m_captions;
}

QStringList RunForm::datasetPrompts() const
{
    return m_prompts;
}

QString RunForm::modelDescription() const
{
    return m_modelInfo->text();
}

QString RunForm::hypernetworkFileDescription() const
{
    return m_fileInfo->text();
}

} // namespace studio::ui
