#include "ui/MergePage.h"

#include "core/diffusion/ImageGenerator.h"
#include "core/diffusion/SamplerKind.h"
#include "core/hypernetwork/HypernetworkConfig.h"
#include "ui/Background.h"
#include "ui/Settings.h"

#include <QComboBox>
#include <QDialog>
#include <QDialogButtonBox>
#include <QDir>
#include <QDoubleSpinBox>
#include <QEvent>
#include <QFileDialog>
#include <QFileInfo>
#include <QFormLayout>
#include <QGridLayout>
#include <QGroupBox>
#include <QHBoxLayout>
#include <QLabel>
#include <QLineEdit>
#include <QPushButton>
#include <QRandomGenerator>
#include <QScrollArea>
#include <QSignalBlocker>
#include <QSlider>
#include <QSpinBox>
#include <QThread>
#include <QToolButton>
#include <QVBoxLayout>

#include <atomic>
#include <cmath>
#include <functional>
#include <limits>
#include <mutex>
#include <utility>

namespace studio::ui {

namespace {

const QString kErrorColor = QStringLiteral("#c62828");
const QString kWarningColor = QStringLiteral("#b26a00");
const QString kOkColor = QStringLiteral("#2e7d32");
constexpr int kTileSize = 192;
constexpr int kSliderSteps = 100; // slider units per 1.0 of weight
constexpr double kSliderMaximum = 2.0;

QString displayPath(const QString& path)
{
    return QDir::toNativeSeparators(path);
}

QString stem(const QString& path)
{
    return QFileInfo(path).completeBaseName();
}

// The key a file's summary is cached under: a file changed on disk is read again.
QString summaryKey(const QString& path)
{
    const QFileInfo info(path);
    return info.absoluteFilePath() + QLatin1Char('|') +
           QString::number(info.lastModified().toMSecsSinceEpoch());
}

QString weightText(double weight)
{
    return QString::number(weight, 'g', 3);
}

QString errorText(const std::exception& error)
{
    return QString::fromUtf8(error.what());
}

QImage toImage(const GeneratedImage& image)
{
    const QImage view(reinterpret_cast<const uchar*>(image.rgb.constData()), image.width,
                      image.height, image.width * 3, QImage::Format_RGB888);
    return view.copy(); // the view does not own the bytes
}

// Small previews are enlarged without smoothing, so their pixels stay visible as they are.
QPixmap scaledPixmap(const QImage& image, int side)
{
    const bool enlarging = image.width() < side && image.height() < side;
    return QPixmap::fromImage(
        image.scaled(side, side, Qt::KeepAspectRatio,
                     enlarging ? Qt::FastTransformation : Qt::SmoothTransformation));
}

bool sameModel(const GeneratorModelOptions& a, const GeneratorModelOptions& b)
{
    return a.checkpoint == b.checkpoint && a.config == b.config && a.tokenizer == b.tokenizer &&
           a.device == b.device && a.precision == b.precision && a.clipSkip == b.clipSkip;
}

struct TileSpec
{
    QString caption;
    std::vector<StackEntry> stack;
    bool writesMerge = false; // the merge is written just before this tile
};

} // namespace

// What a preview needs, copied off the form so that the form can change meanwhile.
struct MergePage::PreviewPlan
{
    GeneratorModelOptions model;
    ImageRequest request;
    std::vector<MergeInput> inputs;
    QString mergePath;
    QString mergeName;
    std::vector<TileSpec> tiles;
    QString note; // why a tile was left out
};

// Shared with the generation thread. The generator is only used there; the mutex lets the UI
// thread cancel it while the generation thread may be replacing it.
struct MergePage::GenerationState
{
    std::mutex mutex;
    std::unique_ptr<ImageGenerator> generator;
    GeneratorModelOptions loaded;
    std::atomic<bool> cancelled{false};

    void cancel()
    {
        cancelled = true;
        const std::lock_guard<std::mutex> lock(mutex);
        if (generator) {
            generator->cancel();
        }
    }

    // Loads the model unless the one loaded is the one asked for. Throws studio::Error.
    void ensureModel(const GeneratorModelOptions& options)
    {
        if (generator && sameModel(loaded, options)) {
            return;
        }
        {
            const std::lock_guard<std::mutex> lock(mutex);
            generator.reset(); // frees the old model before the new one loads
        }
        auto fresh = std::make_unique<ImageGenerator>(options);
        const std::lock_guard<std::mutex> lock(mutex);
        generator = std::move(fresh);
        loaded = options;
    }
};

MergePage::MergePage(QWidget* parent)
    : QWidget(parent), m_generation(std::make_shared<GenerationState>())
{
    setupUi();
    m_generationThread = new QThread(this);
    m_generationThread->setObjectName(QStringLiteral("mergePreview"));
    m_generationContext = new QObject;
    m_generationContext->moveToThread(m_generationThread);
    m_generationThread->start();
    rebuildInputRows();
    describeModel();
}

MergePage::~MergePage()
{
    m_generation->cancel();
    m_generationThread->quit();
    m_generationThread->wait();
    delete m_generationContext;
}

// ---- layout ---------------------------------------------------------------------------------

void MergePage::setupUi()
{
    auto* form = new QWidget(this);
    auto* formLayout = new QVBoxLayout(form);
    formLayout->addWidget(createInputsGroup());
    formLayout->addWidget(createModelGroup());
    formLayout->addWidget(createPreviewGroup());
    formLayout->addWidget(createSaveRow());
    m_statusLabel = new QLabel(form);
    m_statusLabel->setObjectName(QStringLiteral("statusLabel"));
    m_statusLabel->setWordWrap(true);
    m_statusLabel->setTextInteractionFlags(Qt::TextSelectableByMouse);
    formLayout->addWidget(m_statusLabel);
    formLayout->addStretch();

    auto* formScroll = new QScrollArea(this);
    formScroll->setWidget(form);
    formScroll->setWidgetResizable(true);
    formScroll->setMinimumWidth(460);
    formScroll->setMaximumWidth(560);

    auto* layout = new QHBoxLayout(this);
    layout->addWidget(formScroll);
    layout->addWidget(createPreviewArea(), 1);
}

QWidget* MergePage::createInputsGroup()
{
    auto* group = new QGroupBox(tr("Hypernetworks"), this);
    auto* layout = new QVBoxLayout(group);

    m_inputsHint = new QLabel(tr("Add the hypernetworks to merge: files of the same structure "
                                 "(sizes, layer structure, activation, layer norm, dropout)."),
                              group);
    m_inputsHint->setWordWrap(true);
    layout->addWidget(m_inputsHint);

    m_inputsList = new QWidget(group);
    m_inputsList->setObjectName(QStringLiteral("inputsList"));
    m_inputsGrid = new QGridLayout(m_inputsList);
    m_inputsGrid->setContentsMargins(0, 0, 0, 0);
    m_inputsGrid->setColumnStretch(0, 1);
    layout->addWidget(m_inputsList);

    auto* buttons = new QHBoxLayout;
    auto* add = new QPushButton(tr("Add…"), group);
    add->setObjectName(QStringLiteral("addInputsButton"));
    connect(add, &QPushButton::clicked, this, &MergePage::browseInputs);
    auto* equal = new QPushButton(tr("Equal weights"), group);
    equal->setObjectName(QStringLiteral("equalWeightsButton"));
    equal->setToolTip(tr("Give every input the weight 1/N: an average."));
    connect(equal, &QPushButton::clicked, this, &MergePage::setEqualWeights);
    buttons->addWidget(add);
    buttons->addWidget(equal);
    buttons->addStretch();
    layout->addLayout(buttons);

    m_weightSumLabel = new QLabel(group);
    m_weightSumLabel->setObjectName(QStringLiteral("weightSumLabel"));
    layout->addWidget(m_weightSumLabel);
    m_structureLabel = new QLabel(group);
    m_structureLabel->setObjectName(QStringLiteral("structureLabel"));
    m_structureLabel->setWordWrap(true);
    m_structureLabel->setTextInteractionFlags(Qt::TextSelectableByMouse);
    layout->addWidget(m_structureLabel);
    return group;
}

QWidget* MergePage::createModelGroup()
{
    auto* group = new QGroupBox(tr("Model"), this);
    auto* layout = new QFormLayout(group);

    m_checkpointEdit = new QLineEdit(group);
    m_checkpointEdit->setObjectName(QStringLiteral("checkpointEdit"));
    m_checkpointEdit->setPlaceholderText(tr("a .safetensors or .ckpt checkpoint"));
    connect(m_checkpointEdit, &QLineEdit::editingFinished, this, &MergePage::describeModel);
    connect(m_checkpointEdit, &QLineEdit::textChanged, this, &MergePage::updateActions);
    auto* browse = new QPushButton(tr("Browse…"), group);
    browse->setObjectName(QStringLiteral("browseModelButton"));
    connect(browse, &QPushButton::clicked, this, &MergePage::browseModel);
    auto* row = new QHBoxLayout;
    row->addWidget(m_checkpointEdit, 1);
    row->addWidget(browse);
    layout->addRow(tr("Checkpoint:"), row);

    m_modelLabel = new QLabel(group);
    m_modelLabel->setObjectName(QStringLiteral("modelLabel"));
    m_modelLabel->setWordWrap(true);
    layout->addRow(QString(), m_modelLabel);

    m_tokenizerEdit = new QLineEdit(group);
    m_tokenizerEdit->setObjectName(QStringLiteral("tokenizerEdit"));
    m_tokenizerEdit->setPlaceholderText(tr("from the settings, else found beside the model"));
    layout->addRow(tr("CLIP vocabulary:"), m_tokenizerEdit);
    return group;
}

QWidget* MergePage::createPreviewGroup()
{
    auto* group = new QGroupBox(tr("Preview"), this);
    auto* layout = new QFormLayout(group);

    m_promptEdit = new QLineEdit(group);
    m_promptEdit->setObjectName(QStringLiteral("promptEdit"));
    layout->addRow(tr("Prompt:"), m_promptEdit);
    m_negativeEdit = new QLineEdit(group);
    m_negativeEdit->setObjectName(QStringLiteral("negativeEdit"));
    layout->addRow(tr("Negative:"), m_negativeEdit);

    m_seedSpin = new QSpinBox(group);
    m_seedSpin->setObjectName(QStringLiteral("seedSpin"));
    m_seedSpin->setRange(-1, std::numeric_limits<int>::max());
    m_seedSpin->setValue(-1);
    m_seedSpin->setSpecialValueText(tr("random"));
    m_seedSpin->setToolTip(tr("Every image of the grid uses this seed; random picks one per "
                              "preview."));
    layout->addRow(tr("Seed:"), m_seedSpin);

    m_samplerCombo = new QComboBox(group);
    m_samplerCombo->setObjectName(QStringLiteral("samplerCombo"));
    for (const SamplerKind kind : {SamplerKind::EulerAncestral, SamplerKind::Ddim}) {
        m_samplerCombo->addItem(samplerDisplayName(kind), samplerName(kind));
    }
    layout->addRow(tr("Sampler:"), m_samplerCombo);

    m_stepsSpin = new QSpinBox(group);
    m_stepsSpin->setObjectName(QStringLiteral("stepsSpin"));
    m_stepsSpin->setRange(1, 500);
    m_stepsSpin->setValue(20);
    layout->addRow(tr("Steps:"), m_stepsSpin);

    m_cfgSpin = new QDoubleSpinBox(group);
    m_cfgSpin->setObjectName(QStringLiteral("cfgSpin"));
    m_cfgSpin->setRange(1.0, 30.0);
    m_cfgSpin->setSingleStep(0.5);
    m_cfgSpin->setValue(7.0);
    layout->addRow(tr("CFG scale:"), m_cfgSpin);

    const auto sizeSpin = [group](const QString& name) {
        auto* spin = new QSpinBox(group);
        spin->setObjectName(name);
        spin->setRange(0, 2048);
        spin->setSingleStep(8);
        spin->setSpecialValueText(tr("native"));
        return spin;
    };
    m_widthSpin = sizeSpin(QStringLiteral("widthSpin"));
    m_heightSpin = sizeSpin(QStringLiteral("heightSpin"));
    auto* sizes = new QHBoxLayout;
    sizes->addWidget(m_widthSpin);
    sizes->addWidget(new QLabel(QStringLiteral("×"), group));
    sizes->addWidget(m_heightSpin);
    sizes->addStretch();
    layout->addRow(tr("Size:"), sizes);

    m_previewButton = new QPushButton(tr("Preview"), group);
    m_previewButton->setObjectName(QStringLiteral("previewButton"));
    m_previewButton->setToolTip(tr("No hypernetwork, each input alone, the merge and the inputs "
                                   "stacked at their weights, all on one seed."));
    connect(m_previewButton, &QPushButton::clicked, this, &MergePage::startPreview);
    m_cancelButton = new QPushButton(tr("Cancel"), group);
    m_cancelButton->setObjectName(QStringLiteral("cancelButton"));
    connect(m_cancelButton, &QPushButton::clicked, this, &MergePage::cancelPreview);
    auto* buttons = new QHBoxLayout;
    buttons->addWidget(m_previewButton);
    buttons->addWidget(m_cancelButton);
    buttons->addStretch();
    layout->addRow(buttons);
    return group;
}

QWidget* MergePage::createSaveRow()
{
    auto* group = new QGroupBox(tr("Save"), this);
    auto* layout = new QHBoxLayout(group);
    m_nameEdit = new QLineEdit(group);
    m_nameEdit->setObjectName(QStringLiteral("nameEdit"));
    m_nameEdit->setPlaceholderText(tr("name: the file's name"));
    m_saveButton = new QPushButton(tr("Save merge…"), group);
    m_saveButton->setObjectName(QStringLiteral("saveButton"));
    connect(m_saveButton, &QPushButton::clicked, this, &MergePage::chooseSavePath);
    layout->addWidget(m_nameEdit, 1);
    layout->addWidget(m_saveButton);
    return group;
}

QWidget* MergePage::createPreviewArea()
{
    m_grid = new QWidget(this);
    m_grid->setObjectName(QStringLiteral("previewGrid"));
    m_gridLayout = new QGridLayout(m_grid);
    m_gridLayout->setAlignment(Qt::AlignTop | Qt::AlignLeft);
    auto* scroll = new QScrollArea(this);
    scroll->setWidget(m_grid);
    scroll->setWidgetResizable(true);
    return scroll;
}

// ---- inputs and weights ---------------------------------------------------------------------

void MergePage::setInputs(const std::vector<MergeInput>& inputs)
{
    m_inputs.clear();
    for (const MergeInput& input : inputs) {
        m_inputs.push_back({input.path, input.weight});
    }
    rebuildInputRows();
}

void MergePage::addInputs(const QStringList& paths)
{
    for (const QString& path : paths) {
        m_inputs.push_back({path, 1.0});
    }
    rebuildInputRows();
    setEqualWeights();
}

void MergePage::removeInput(int index)
{
    if (index < 0 || index >= int(m_inputs.size())) {
        return;
    }
    m_inputs.erase(m_inputs.begin() + index);
    rebuildInputRows();
}

void MergePage::setWeight(int index, double weight)
{
    if (index < 0 || index >= int(m_inputs.size()) || !std::isfinite(weight)) {
        return;
    }
    m_inputs[size_t(index)].weight = weight;
    showWeight(index);
    updateWeightSum();
}

void MergePage::setEqualWeights()
{
    for (int i = 0; i < int(m_inputs.size()); ++i) {
        setWeight(i, 1.0 / double(m_inputs.size()));
    }
}

std::vector<MergeInput> MergePage::inputs() const
{
    std::vector<MergeInput> result;
    for (const InputEntry& entry : m_inputs) {
        result.push_back({entry.path, entry.weight});
    }
    return result;
}

void MergePage::rebuildInputRows()
{
    // The remove button of a row may be the sender: delete later, and drop the names now so
    // that lookups find only the new rows.
    for (QWidget* widget : std::as_const(m_rowWidgets)) {
        widget->hide();
        widget->setObjectName(QString());
        widget->deleteLater();
    }
    m_rowWidgets.clear();
    m_weightSliders.clear();
    m_weightSpins.clear();
    for (int row = 0; row < int(m_inputs.size()); ++row) {
        addInputRow(row);
    }
    m_inputsHint->setVisible(m_inputs.empty());
    updateWeightSum();
    readSummaries();
    refreshStructure();
    updateActions();
}

void MergePage::addInputRow(int row)
{
    const QString path = m_inputs[size_t(row)].path;
    auto* name = new QLabel(QFileInfo(path).fileName(), m_inputsList);
    name->setObjectName(QStringLiteral("inputName%1").arg(row));
    name->setToolTip(displayPath(path));

    auto* slider = new QSlider(Qt::Horizontal, m_inputsList);
    slider->setObjectName(QStringLiteral("weightSlider%1").arg(row));
    slider->setRange(0, int(kSliderMaximum * kSliderSteps));
    slider->setToolTip(tr("Weight from 0 to %1; the box beside it takes any value, negative too")
                           .arg(kSliderMaximum));
    connect(slider, &QSlider::valueChanged, this,
            [this, row](int value) { setWeight(row, double(value) / kSliderSteps); });

    auto* spin = new QDoubleSpinBox(m_inputsList);
    spin->setObjectName(QStringLiteral("weightSpin%1").arg(row));
    spin->setRange(-5.0, 5.0);
    spin->setDecimals(3);
    spin->setSingleStep(0.05);
    connect(spin, &QDoubleSpinBox::valueChanged, this,
            [this, row](double value) { setWeight(row, value); });

    auto* remove = new QToolButton(m_inputsList);
    remove->setObjectName(QStringLiteral("removeInput%1").arg(row));
    remove->setText(tr("Remove"));
    remove->setToolTip(tr("Remove %1 from the merge").arg(displayPath(path)));
    connect(remove, &QToolButton::clicked, this, [this, row] { removeInput(row); });

    m_inputsGrid->addWidget(name, row, 0);
    m_inputsGrid->addWidget(slider, row, 1);
    m_inputsGrid->addWidget(spin, row, 2);
    m_inputsGrid->addWidget(remove, row, 3);
    m_rowWidgets << name << slider << spin << remove;
    m_weightSliders << slider;
    m_weightSpins << spin;
    showWeight(row);
}

void MergePage::showWeight(int index)
{
    if (index >= m_weightSliders.size()) {
        return;
    }
    const double weight = m_inputs[size_t(index)].weight;
    const QSignalBlocker sliderBlocker(m_weightSliders[index]);
    const QSignalBlocker spinBlocker(m_weightSpins[index]);
    m_weightSliders[index]->setValue(int(std::lround(weight * kSliderSteps)));
    m_weightSpins[index]->setValue(weight);
}

void MergePage::updateWeightSum()
{
    double sum = 0.0;
    for (const InputEntry& entry : m_inputs) {
        sum += entry.weight;
    }
    if (m_inputs.empty()) {
        m_weightSumLabel->clear();
        return;
    }
    const bool one = std::abs(sum - 1.0) < 1e-3;
    m_weightSumLabel->setText(
        one ? tr("The weights sum to 1.")
            : tr("The weights sum to %1, not 1: the merged weights are scaled by that much.")
                  .arg(weightText(sum)));
    m_weightSumLabel->setStyleSheet(one ? QString()
                                        : QStringLiteral("color: %1;").arg(kWarningColor));
}

// ---- structure check ------------------------------------------------------------------------

void MergePage::readSummaries()
{
    for (const InputEntry& entry : m_inputs) {
        const QString key = summaryKey(entry.path);
        if (m_summaries.contains(key) || m_pendingSummaries.contains(key)) {
            continue;
        }
        m_pendingSummaries.insert(key);
        const QString path = entry.path;
        runInBackground(
            this,
            [path] {
                SummaryResult result;
                try {
                    result.summary = summarizeHypernetworkFile(path);
                } catch (const std::exception& error) {
                    result.error = errorText(error);
                }
                return result;
            },
            [this, key](const SummaryResult& result) {
                m_pendingSummaries.remove(key);
                m_summaries.insert(key, result);
                refreshStructure();
                updateActions();
            });
    }
}

void MergePage::refreshStructure()
{
    m_incompatibility.clear();
    std::vector<HypernetworkSummary> summaries;
    for (const InputEntry& entry : m_inputs) {
        const QString key = summaryKey(entry.path);
        if (!m_summaries.contains(key)) {
            setStructureText(tr("Reading the hypernetworks…"), QString());
            return;
        }
        const SummaryResult& result = m_summaries[key];
        if (!result.error.isEmpty()) {
            m_incompatibility = result.error;
            setStructureText(result.error, kErrorColor);
            return;
        }
        summaries.push_back(result.summary);
    }
    if (summaries.size() < 2) {
        setStructureText(summaries.empty()
                             ? QString()
                             : tr("Add another hypernetwork of the same structure to merge."),
                         QString());
        return;
    }
    m_incompatibility = mergeIncompatibility(summaries);
    if (!m_incompatibility.isEmpty()) {
        setStructureText(m_incompatibility, kErrorColor);
        return;
    }
    const HypernetworkConfig& config = summaries.front().config;
    QStringList sizes;
    for (const int size : config.sizes) {
        sizes << QString::number(size);
    }
    setStructureText(tr("Same structure: sizes %1, layer structure %2, activation %3. The merge "
                        "has %L4 parameters.")
                         .arg(sizes.join(QStringLiteral(", ")),
                              formatNumberList(config.layerStructure),
                              config.activation.value_or(QStringLiteral("None")))
                         .arg(summaries.front().parameterCount),
                     kOkColor);
}

void MergePage::setStructureText(const QString& text, const QString& color)
{
    m_structureLabel->setText(text);
    m_structureLabel->setStyleSheet(color.isEmpty() ? QString()
                                                    : QStringLiteral("color: %1;").arg(color));
}

bool MergePage::canMerge() const
{
    if (m_inputs.size() < 2 || !m_incompatibility.isEmpty()) {
        return false;
    }
    for (const InputEntry& entry : m_inputs) {
        const auto found = m_summaries.constFind(summaryKey(entry.path));
        if (found == m_summaries.constEnd() || !found->error.isEmpty()) {
            return false;
        }
    }
    return true;
}

void MergePage::updateActions()
{
    const bool hasModel = !m_checkpointEdit->text().trimmed().isEmpty();
    m_previewButton->setEnabled(!m_previewRunning && !m_inputs.empty() && hasModel);
    m_cancelButton->setEnabled(m_previewRunning);
    m_saveButton->setEnabled(canMerge() && !m_saving);
}

// ---- model ----------------------------------------------------------------------------------

void MergePage::setModel(const QString& checkpoint, const QString& tokenizer)
{
    m_checkpointEdit->setText(checkpoint);
    m_tokenizerEdit->setText(tokenizer);
    describeModel();
}

QString MergePage::modelDescription() const
{
    return m_modelLabel->text();
}

void MergePage::describeModel()
{
    const QString checkpoint = m_checkpointEdit->text().trimmed();
    if (checkpoint == m_describedCheckpoint && !checkpoint.isEmpty()) {
        return;
    }
    m_describedCheckpoint = checkpoint;
    m_modelOk = false;
    if (checkpoint.isEmpty()) {
        m_modelLabel->setText(tr("Choose the model the previews use."));
        m_modelLabel->setStyleSheet(QString());
        updateActions();
        return;
    }
    m_modelLabel->setText(tr("Reading %1…").arg(QFileInfo(checkpoint).fileName()));
    m_modelLabel->setStyleSheet(QString());
    runInBackground(
        this,
        [checkpoint] {
            try {
                return std::make_pair(describeCheckpoint(checkpoint), QString());
            } catch (const std::exception& error) {
                return std::make_pair(QString(), errorText(error));
            }
        },
        [this, checkpoint](const std::pair<QString, QString>& result) {
            if (checkpoint != m_describedCheckpoint) {
                return; // the field changed meanwhile
            }
            m_modelOk = result.second.isEmpty();
            m_modelLabel->setText(m_modelOk ? result.first : result.second);
            m_modelLabel->setStyleSheet(m_modelOk ? QString()
                                                  : QStringLiteral("color: %1;").arg(kErrorColor));
        });
    updateActions();
}

void MergePage::browseModel()
{
    const QString current = m_checkpointEdit->text();
    const QString path = QFileDialog::getOpenFileName(
        this, tr("Model checkpoint"), current.isEmpty() ? QDir::homePath() : current,
        tr("Checkpoints (*.safetensors *.ckpt);;All files (*)"));
    if (!path.isEmpty()) {
        setModel(path, m_tokenizerEdit->text());
    }
}

void MergePage::browseInputs()
{
    const QString folder = m_inputs.empty() ? Settings::load().outputFolder
                                            : QFileInfo(m_inputs.back().path).absolutePath();
    const QStringList paths = QFileDialog::getOpenFileNames(
        this, tr("Add hypernetworks"), folder, tr("Hypernetworks (*.pt);;All files (*)"));
    if (!paths.isEmpty()) {
        addInputs(paths);
    }
}

// ---- preview --------------------------------------------------------------------------------

MergePage::PreviewPlan MergePage::planPreview(QString& problem)
{
    PreviewPlan plan;
    const Settings settings = Settings::load();
    problem = settings.problem();
    if (m_inputs.empty()) {
        problem = tr("Add at least one hypernetwork to preview.");
    } else if (m_checkpointEdit->text().trimmed().isEmpty()) {
        problem = tr("Choose the model checkpoint to preview with.");
    }
    if (!problem.isEmpty()) {
        return plan;
    }

    plan.model.checkpoint = m_checkpointEdit->text().trimmed();
    plan.model.tokenizer = m_tokenizerEdit->text().trimmed().isEmpty()
                               ? settings.tokenizerPath
                               : m_tokenizerEdit->text().trimmed();
    plan.model.device = settings.device;
    plan.model.precision = settings.precision;

    ImageRequest& request = plan.request;
    request.prompt = m_promptEdit->text();
    request.negativePrompt = m_negativeEdit->text();
    // One seed for the whole grid, so that only the hypernetworks differ between the images.
    request.seed = m_seedSpin->value() >= 0
                       ? m_seedSpin->value()
                       : QRandomGenerator::global()->bounded(std::numeric_limits<int>::max());
    request.sampler = m_samplerCombo->currentData().toString();
    request.steps = m_stepsSpin->value();
    request.cfgScale = m_cfgSpin->value();
    request.width = m_widthSpin->value();
    request.height = m_heightSpin->value();

    plan.tiles.push_back({tr("No hypernetwork"), {}});
    QStringList stackParts;
    std::vector<StackEntry> stack;
    for (const InputEntry& entry : m_inputs) {
        plan.tiles.push_back({tr("%1 alone").arg(stem(entry.path)), {{entry.path, 1.0}}});
        stackParts << QStringLiteral("%1 %2").arg(stem(entry.path), weightText(entry.weight));
        stack.push_back({entry.path, entry.weight});
    }
    if (canMerge() && m_tempDir.isValid()) {
        plan.inputs = inputs();
        plan.mergePath = m_tempDir.filePath(QStringLiteral("merge.pt"));
        plan.mergeName = sanitizeHypernetworkName(m_nameEdit->text());
        if (plan.mergeName.isEmpty()) {
            plan.mergeName = QStringLiteral("merge");
        }
        plan.tiles.push_back({tr("Merge (%1)").arg(stackParts.join(QStringLiteral(" + "))),
                              {{plan.mergePath, 1.0}},
                              true});
    } else if (m_inputs.size() >= 2) {
        plan.note = tr("No merge tile: %1")
                        .arg(m_incompatibility.isEmpty() ? tr("the files are still being read")
                                                         : m_incompatibility);
    }
    if (m_inputs.size() >= 2) {
        plan.tiles.push_back(
            {tr("Stacked (%1)").arg(stackParts.join(QStringLiteral(", "))), stack});
    }
    return plan;
}

void MergePage::startPreview()
{
    if (m_previewRunning) {
        return;
    }
    QString problem;
    const PreviewPlan plan = planPreview(problem);
    if (!problem.isEmpty()) {
        setStatus(problem, true);
        return;
    }
    clearTiles();
    for (const TileSpec& tile : plan.tiles) {
        addTile(tile.caption);
    }
    const quint64 job = ++m_previewJob;
    m_previewSeed = plan.request.seed;
    m_previewRunning = true;
    m_generation->cancelled = false;
    updateActions();
    QString status =
        tr("Generating %1 images with seed %2…").arg(plan.tiles.size()).arg(plan.request.seed);
    if (!plan.note.isEmpty()) {
        status += QLatin1Char(' ') + plan.note;
    }
    setStatus(status);
    QMetaObject::invokeMethod(
        m_generationContext, [this, plan, job] { generatePreview(plan, job); },
        Qt::QueuedConnection);
}

void MergePage::generatePreview(const PreviewPlan& plan, quint64 job)
{
    GenerationState& state = *m_generation; // the page waits for this thread before it goes
    const auto post = [this](std::function<void()> function) {
        QMetaObject::invokeMethod(this, std::move(function), Qt::QueuedConnection);
    };
    try {
        state.ensureModel(plan.model);
    } catch (const std::exception& error) {
        const QString message = errorText(error);
        post([this, job, message] { finishPreview(job, message); });
        return;
    }
    for (int i = 0; i < int(plan.tiles.size()) && !state.cancelled; ++i) {
        const TileSpec& tile = plan.tiles[size_t(i)];
        try {
            if (tile.writesMerge) {
                mergeHypernetworkFiles(plan.inputs, plan.mergePath, plan.mergeName);
            }
            ImageRequest request = plan.request;
            request.hypernetworks = tile.stack;
            const GeneratedImage image = state.generator->generate(request);
            const QImage picture = toImage(image);
            const QString parameters = image.parameters;
            post([this, job, i, picture, parameters] {
                showTileImage(job, i, picture, parameters);
            });
        } catch (const std::exception& error) {
            if (state.cancelled) {
                break;
            }
            const QString message = errorText(error);
            post([this, job, i, message] { showTileError(job, i, message); });
        }
    }
    const QString outcome = state.cancelled ? tr("Preview cancelled.") : QString();
    post([this, job, outcome] { finishPreview(job, outcome); });
}

void MergePage::cancelPreview()
{
    if (m_previewRunning) {
        m_generation->cancel();
        setStatus(tr("Cancelling…"));
    }
}

void MergePage::clearTiles()
{
    // Renamed at once so that lookups by name find only the new tiles.
    for (Tile& tile : m_tiles) {
        tile.imageLabel->setObjectName(QString());
        tile.captionLabel->setObjectName(QString());
        tile.imageLabel->parentWidget()->hide();
        tile.imageLabel->parentWidget()->deleteLater();
    }
    m_tiles.clear();
}

void MergePage::addTile(const QString& caption)
{
    const int index = int(m_tiles.size());
    auto* frame = new QWidget(m_grid);
    auto* layout = new QVBoxLayout(frame);
    auto* image = new QLabel(tr("waiting…"), frame);
    image->setObjectName(QStringLiteral("previewImage%1").arg(index));
    image->setFixedSize(kTileSize, kTileSize);
    image->setAlignment(Qt::AlignCenter);
    image->setFrameShape(QFrame::StyledPanel);
    image->setCursor(Qt::PointingHandCursor);
    image->installEventFilter(this);
    auto* label = new QLabel(caption, frame);
    label->setObjectName(QStringLiteral("previewCaption%1").arg(index));
    label->setWordWrap(true);
    label->setMaximumWidth(kTileSize);
    layout->addWidget(image);
    layout->addWidget(label);

    const int columns = 3;
    m_gridLayout->addWidget(frame, index / columns, index % columns);
    m_tiles.push_back({caption, QImage(), QString(), image, label});
}

void MergePage::showTileImage(quint64 job, int index, const QImage& image,
                              const QString& parameters)
{
    if (job != m_previewJob || index >= int(m_tiles.size())) {
        return; // from a preview that was replaced
    }
    Tile& tile = m_tiles[size_t(index)];
    tile.image = image;
    tile.parameters = parameters;
    tile.imageLabel->setPixmap(scaledPixmap(image, kTileSize));
    tile.imageLabel->setToolTip(parameters);
    setStatus(tr("%1 of %2 images done.").arg(previewCount()).arg(m_tiles.size()));
}

void MergePage::showTileError(quint64 job, int index, const QString& message)
{
    if (job != m_previewJob || index >= int(m_tiles.size())) {
        return;
    }
    Tile& tile = m_tiles[size_t(index)];
    tile.imageLabel->setText(tr("failed"));
    tile.imageLabel->setToolTip(message);
    tile.captionLabel->setText(tile.caption + QLatin1Char('\n') + message);
    tile.captionLabel->setStyleSheet(QStringLiteral("color: %1;").arg(kErrorColor));
}

void MergePage::finishPreview(quint64 job, const QString& message)
{
    if (job != m_previewJob) {
        return;
    }
    m_previewRunning = false;
    updateActions();
    if (!message.isEmpty()) {
        setStatus(message, !m_generation->cancelled);
    } else {
        setStatus(tr("Preview done with seed %1: %2 of %3 images. Click one to enlarge it.")
                      .arg(m_previewSeed)
                      .arg(previewCount())
                      .arg(m_tiles.size()));
    }
    Q_EMIT previewFinished();
}

int MergePage::previewCount() const
{
    int count = 0;
    for (const Tile& tile : m_tiles) {
        count += tile.image.isNull() ? 0 : 1;
    }
    return count;
}

QImage MergePage::previewImage(int index) const
{
    return index >= 0 && index < tileCount() ? m_tiles[size_t(index)].image : QImage();
}

QString MergePage::previewCaption(int index) const
{
    return index >= 0 && index < tileCount() ? m_tiles[size_t(index)].caption : QString();
}

QString MergePage::previewParameters(int index) const
{
    return index >= 0 && index < tileCount() ? m_tiles[size_t(index)].parameters : QString();
}

QDialog* MergePage::showEnlarged(int index)
{
    if (previewImage(index).isNull()) {
        return nullptr;
    }
    const Tile& tile = m_tiles[size_t(index)];
    auto* dialog = new QDialog(this);
    dialog->setObjectName(QStringLiteral("enlargedPreview"));
    dialog->setAttribute(Qt::WA_DeleteOnClose);
    dialog->setWindowTitle(tile.caption);
    auto* layout = new QVBoxLayout(dialog);
    auto* image = new QLabel(dialog);
    image->setObjectName(QStringLiteral("enlargedImage"));
    image->setPixmap(scaledPixmap(tile.image, std::max(512, tile.image.width())));
    layout->addWidget(image);
    auto* parameters = new QLabel(tile.caption + QStringLiteral("\n\n") + tile.parameters, dialog);
    parameters->setObjectName(QStringLiteral("enlargedParameters"));
    parameters->setWordWrap(true);
    parameters->setTextInteractionFlags(Qt::TextSelectableByMouse);
    layout->addWidget(parameters);
    auto* buttons = new QDialogButtonBox(QDialogButtonBox::Close, dialog);
    connect(buttons, &QDialogButtonBox::rejected, dialog, &QDialog::close);
    layout->addWidget(buttons);
    dialog->show();
    return dialog;
}

bool MergePage::eventFilter(QObject* watched, QEvent* event)
{
    if (event->type() == QEvent::MouseButtonRelease) {
        for (int i = 0; i < tileCount(); ++i) {
            if (m_tiles[size_t(i)].imageLabel == watched) {
                showEnlarged(i);
                return true;
            }
        }
    }
    return QWidget::eventFilter(watched, event);
}

// ---- saving ---------------------------------------------------------------------------------

void MergePage::chooseSavePath()
{
    QString name = sanitizeHypernetworkName(m_nameEdit->text());
    if (name.isEmpty()) {
        name = QStringLiteral("merge");
    }
    const QString suggested =
        QDir(Settings::load().outputFolder).filePath(name + QStringLiteral(".pt"));
    QString path =
        QFileDialog::getSaveFileName(this, tr("Save merge"), suggested, tr("Hypernetworks (*.pt)"));
    if (path.isEmpty()) {
        return;
    }
    if (!path.endsWith(QStringLiteral(".pt"), Qt::CaseInsensitive)) {
        path += QStringLiteral(".pt");
    }
    saveMerge(path);
}

void MergePage::saveMerge(const QString& path)
{
    if (m_saving) {
        return;
    }
    if (!canMerge()) {
        setStatus(m_incompatibility.isEmpty()
                      ? tr("Add two or more hypernetworks of the same structure to save a merge.")
                      : m_incompatibility,
                  true);
        return;
    }
    QString name = sanitizeHypernetworkName(m_nameEdit->text());
    if (name.isEmpty()) {
        name = sanitizeHypernetworkName(stem(path));
    }
    if (name.isEmpty()) {
        setStatus(tr("The merge needs a name with letters or digits; type one beside Save."), true);
        return;
    }
    m_saving = true;
    updateActions();
    setStatus(tr("Writing %1…").arg(displayPath(path)));
    const std::vector<MergeInput> merged = inputs();
    runInBackground(
        this,
        [merged, path, name] {
            try {
                mergeHypernetworkFiles(merged, path, name);
                return QString();
            } catch (const std::exception& error) {
                return errorText(error);
            }
        },
        [this, path](const QString& error) {
            m_saving = false;
            updateActions();
            if (!error.isEmpty()) {
                setStatus(error, true);
                return;
            }
            m_savedPath = path;
            setStatus(tr("Saved the merge as %1.").arg(displayPath(path)));
            Q_EMIT mergeSaved(path);
        });
}

void MergePage::setStatus(const QString& text, bool error)
{
    m_statusLabel->setText(text);
    m_statusLabel->setStyleSheet(error ? QStringLiteral("color: %1;").arg(kErrorColor) : QString());
}

} // namespace studio::ui
