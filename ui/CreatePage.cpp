#include "ui/CreatePage.h"

#include "core/Error.h"
#include "core/hypernetwork/ActivationNames.h"
#include "ui/Settings.h"

#include <QCheckBox>
#include <QComboBox>
#include <QDir>
#include <QFileDialog>
#include <QFileInfo>
#include <QFormLayout>
#include <QFrame>
#include <QGridLayout>
#include <QGroupBox>
#include <QHBoxLayout>
#include <QLabel>
#include <QLineEdit>
#include <QLocale>
#include <QMessageBox>
#include <QPushButton>
#include <QThread>
#include <QToolButton>
#include <QVBoxLayout>

#include <limits>

namespace studio::ui {

namespace {

// The webui's "Modules" choices, in its order (spec hypernetworks.md 1.1).
constexpr int kSizes[] = {768, 1024, 320, 640, 1280};

// The .pt writer stores 32-bit zip offsets (core/io/ZipArchive.cpp).
constexpr int64_t kFileLimit = int64_t{4} << 30;

const QString kErrorColor = QStringLiteral("#c62828");

const WeightInit kWeightInits[] = {WeightInit::Normal, WeightInit::XavierUniform,
                                   WeightInit::XavierNormal, WeightInit::KaimingUniform,
                                   WeightInit::KaimingNormal};

QString sizeToolTip(int size)
{
    switch (size) {
    case 768:
        return QObject::tr("SD1.x text context (cross-attention)");
    case 1024:
        return QObject::tr("SD2.x text context (cross-attention); unused on SD1");
    default:
        return QObject::tr("UNet self-attention at width %1, in SD1 and SD2").arg(size);
    }
}

// Runs `body`; an Error it throws becomes the state's problem, blamed on `field`.
template <typename State, typename Body> bool attempt(State& state, QWidget* field, Body&& body)
{
    try {
        body();
        return true;
    } catch (const Error& error) {
        state.problem = error.message();
        state.field = field;
        return false;
    }
}

double parseStd(const QString& text)
{
    bool ok = false;
    const double value = text.trimmed().toDouble(&ok);
    if (!ok) {
        throw Error(QStringLiteral("normal init std: '%1' is not a number; the webui uses 0.01")
                        .arg(text.trimmed()));
    }
    return value;
}

// Empty or -1 (the extension's "default") is a random start.
std::optional<uint64_t> parseSeed(const QString& text)
{
    const QString trimmed = text.trimmed();
    if (trimmed.isEmpty() || trimmed == QLatin1String("-1")) {
        return std::nullopt;
    }
    bool ok = false;
    const qulonglong seed = trimmed.toULongLong(&ok);
    if (!ok) {
        throw Error(QStringLiteral("init seed: '%1' is not a whole number from 0 to %2; leave it "
                                   "empty for a random start")
                        .arg(trimmed)
                        .arg(std::numeric_limits<qulonglong>::max()));
    }
    return seed;
}

QLineEdit* lineEdit(QWidget* parent, const QString& name, const QString& text,
                    const QString& toolTip)
{
    auto* edit = new QLineEdit(text, parent);
    edit->setObjectName(name);
    edit->setToolTip(toolTip);
    return edit;
}

QCheckBox* checkBox(QWidget* parent, const QString& name, const QString& text,
                    const QString& toolTip)
{
    auto* check = new QCheckBox(text, parent);
    check->setObjectName(name);
    check->setToolTip(toolTip);
    return check;
}

} // namespace

CreatePage::CreatePage(QWidget* parent) : QWidget(parent)
{
    m_confirmOverwrite = [this](const QString& path) {
        return QMessageBox::question(this, tr("Replace file?"),
                                     tr("'%1' already exists. Replace it with the new "
                                        "hypernetwork?")
                                         .arg(QDir::toNativeSeparators(path)),
                                     QMessageBox::Yes | QMessageBox::No,
                                     QMessageBox::No) == QMessageBox::Yes;
    };
    setupUi();
    connectFields();
    refresh();
}

CreatePage::~CreatePage()
{
    if (m_worker) {
        m_worker->wait();
        delete m_worker;
    }
}

void CreatePage::setOverwriteConfirmation(OverwriteConfirmation confirm)
{
    m_confirmOverwrite = std::move(confirm);
}

void CreatePage::setupUi()
{
    auto* layout = new QVBoxLayout(this);
    layout->addWidget(createStructureGroup());
    layout->addWidget(createAdvancedSection());

    auto* numbers = new QHBoxLayout;
    m_parameterLabel = new QLabel(this);
    m_parameterLabel->setObjectName(QStringLiteral("parameterCountLabel"));
    m_fileSizeLabel = new QLabel(this);
    m_fileSizeLabel->setObjectName(QStringLiteral("fileSizeLabel"));
    numbers->addWidget(m_parameterLabel);
    numbers->addSpacing(24);
    numbers->addWidget(m_fileSizeLabel);
    numbers->addStretch();
    layout->addLayout(numbers);

    m_problemLabel = new QLabel(this);
    m_problemLabel->setObjectName(QStringLiteral("problemLabel"));
    m_problemLabel->setWordWrap(true);
    m_problemLabel->setTextInteractionFlags(Qt::TextSelectableByMouse);
    layout->addWidget(m_problemLabel);

    layout->addWidget(createOutputRow());
    m_statusLabel = new QLabel(this);
    m_statusLabel->setObjectName(QStringLiteral("statusLabel"));
    m_statusLabel->setWordWrap(true);
    m_statusLabel->setTextInteractionFlags(Qt::TextSelectableByMouse);
    layout->addWidget(m_statusLabel);
    layout->addStretch();
}

QWidget* CreatePage::createStructureGroup()
{
    auto* group = new QGroupBox(tr("Hypernetwork"), this);
    auto* form = new QFormLayout(group);

    m_nameEdit = lineEdit(group, QStringLiteral("nameEdit"), QString(),
                          tr("Stored in the file and used as its name, NAME.pt. Letters, digits "
                             "and '._- ' are kept, as in the webui."));
    m_nameEdit->setPlaceholderText(tr("for example: watercolor-style"));
    form->addRow(tr("&Name"), m_nameEdit);
    form->addRow(tr("Modules"), createSizesRow());

    m_layersEdit = lineEdit(group, QStringLiteral("layerStructureEdit"), QStringLiteral("1, 2, 1"),
                            tr("Width multipliers of the layers; they start and end with 1. "
                               "\"1, 2, 1\" is the webui's default."));
    form->addRow(tr("&Layer structure"), m_layersEdit);

    m_activationCombo = new QComboBox(group);
    m_activationCombo->setObjectName(QStringLiteral("activationCombo"));
    m_activationCombo->addItems(activationNames());
    m_activationCombo->setToolTip(tr("Activation after each layer but the last; \"swish\" is "
                                     "Hardswish, as in the webui."));
    form->addRow(tr("&Activation"), m_activationCombo);

    m_weightInitCombo = new QComboBox(group);
    m_weightInitCombo->setObjectName(QStringLiteral("weightInitCombo"));
    for (WeightInit init : kWeightInits) {
        m_weightInitCombo->addItem(weightInitName(init), static_cast<int>(init));
    }
    m_weightInitCombo->setToolTip(
        tr("Kaiming for relu-like, Xavier for sigmoid-like, Normal otherwise."));
    form->addRow(tr("&Weight init"), m_weightInitCombo);

    m_layerNormCheck =
        checkBox(group, QStringLiteral("layerNormCheck"), tr("Add layer normalization"),
                 tr("A LayerNorm after every Linear layer, the last one included."));
    form->addRow(QString(), m_layerNormCheck);
    m_activateOutputCheck =
        checkBox(group, QStringLiteral("activateOutputCheck"), tr("Activate the output"),
                 tr("Also apply the activation after the last layer."));
    form->addRow(QString(), m_activateOutputCheck);

    m_useDropoutCheck = checkBox(group, QStringLiteral("useDropoutCheck"), tr("Use dropout"),
                                 tr("Randomly drop activations while training."));
    m_dropoutEdit =
        lineEdit(group, QStringLiteral("dropoutStructureEdit"), QStringLiteral("0, 0, 0"),
                 tr("One probability per layer-structure entry; the first and the last are 0. "
                    "The webui suggests an increasing sequence such as \"0, 0.05, 0.15\"."));
    m_dropoutEdit->setEnabled(false);
    auto* dropoutRow = new QHBoxLayout;
    dropoutRow->addWidget(m_useDropoutCheck);
    dropoutRow->addWidget(m_dropoutEdit, 1);
    auto* dropoutLabel = new QLabel(tr("&Dropout"), group);
    dropoutLabel->setBuddy(m_useDropoutCheck);
    form->addRow(dropoutLabel, dropoutRow);
    return group;
}

QWidget* CreatePage::createSizesRow()
{
    auto* row = new QFrame(this);
    row->setObjectName(QStringLiteral("sizesRow"));
    row->setToolTip(tr("Context widths that get a (k, v) module pair."));
    auto* layout = new QHBoxLayout(row);
    layout->setContentsMargins(2, 2, 2, 2);
    for (int size : kSizes) {
        auto* check = checkBox(row, QStringLiteral("sizeCheck%1").arg(size), QString::number(size),
                               sizeToolTip(size));
        check->setChecked(size != 1024); // the webui's default: 768, 320, 640, 1280
        check->setProperty("moduleSize", size);
        layout->addWidget(check);
        m_sizeChecks << check;
    }
    layout->addStretch();
    m_sizesRow = row;
    return row;
}

QWidget* CreatePage::createAdvancedSection()
{
    auto* section = new QWidget(this);
    auto* layout = new QVBoxLayout(section);
    layout->setContentsMargins(0, 0, 0, 0);

    m_advancedToggle = new QToolButton(section);
    m_advancedToggle->setObjectName(QStringLiteral("advancedToggle"));
    m_advancedToggle->setText(tr("Advanced"));
    m_advancedToggle->setCheckable(true);
    m_advancedToggle->setToolButtonStyle(Qt::ToolButtonTextBesideIcon);
    m_advancedToggle->setAutoRaise(true);
    layout->addWidget(m_advancedToggle);

    m_advancedPanel = new QWidget(section);
    m_advancedPanel->setObjectName(QStringLiteral("advancedPanel"));
    auto* form = new QFormLayout(m_advancedPanel);
    m_seedEdit = lineEdit(m_advancedPanel, QStringLiteral("initSeedEdit"), QString(),
                          tr("The same seed gives the same starting weights (k and v modules then "
                             "start identical, as in the extension). Empty or -1: random."));
    m_seedEdit->setPlaceholderText(tr("random"));
    form->addRow(tr("Init &seed"), m_seedEdit);
    m_normalStdEdit =
        lineEdit(m_advancedPanel, QStringLiteral("normalStdEdit"), QStringLiteral("0.01"),
                 tr("Standard deviation of Normal init and of LayerNorm weights."));
    form->addRow(tr("Normal &std"), m_normalStdEdit);
    m_skipConnectionCheck = checkBox(
        m_advancedPanel, QStringLiteral("skipConnectionCheck"), tr("Residual blocks"),
        tr("The extension's skip-connection layout; the plain webui cannot load such files."));
    form->addRow(tr("Skip connection"), m_skipConnectionCheck);
    m_upsampleLinearCheck =
        checkBox(m_advancedPanel, QStringLiteral("upsampleLinearCheck"), tr("Learned (Linear)"),
                 tr("Residual blocks resize with a learned Linear layer instead of "
                    "nearest-neighbour resampling."));
    m_upsampleLinearCheck->setEnabled(false);
    form->addRow(tr("Upsampling"), m_upsampleLinearCheck);
    m_infoEdit = lineEdit(m_advancedPanel, QStringLiteral("optionalInfoEdit"), QString(),
                          tr("Free text stored in the file as optional_info."));
    form->addRow(tr("&Notes"), m_infoEdit);
    layout->addWidget(m_advancedPanel);

    setAdvancedVisible(false);
    return section;
}

QWidget* CreatePage::createOutputRow()
{
    auto* row = new QWidget(this);
    auto* layout = new QGridLayout(row);
    layout->setContentsMargins(0, 0, 0, 0);

    m_outputFolderEdit =
        lineEdit(row, QStringLiteral("outputFolderEdit"), Settings::load().outputFolder,
                 tr("The folder NAME.pt is written to; created if missing."));
    auto* browse = new QPushButton(tr("Browse…"), row);
    browse->setObjectName(QStringLiteral("browseOutputButton"));
    connect(browse, &QPushButton::clicked, this, &CreatePage::browseOutputFolder);
    m_createButton = new QPushButton(tr("Create"), row);
    m_createButton->setObjectName(QStringLiteral("createButton"));
    m_createButton->setDefault(true);
    connect(m_createButton, &QPushButton::clicked, this, &CreatePage::create);
    m_outputPathLabel = new QLabel(row);
    m_outputPathLabel->setObjectName(QStringLiteral("outputPathLabel"));

    layout->addWidget(new QLabel(tr("Output folder"), row), 0, 0);
    layout->addWidget(m_outputFolderEdit, 0, 1);
    layout->addWidget(browse, 0, 2);
    layout->addWidget(m_createButton, 0, 3);
    layout->addWidget(m_outputPathLabel, 1, 1, 1, 3);
    layout->setColumnStretch(1, 1);
    return row;
}

void CreatePage::connectFields()
{
    for (QLineEdit* edit : {m_nameEdit, m_layersEdit, m_dropoutEdit, m_seedEdit, m_normalStdEdit,
                            m_infoEdit, m_outputFolderEdit}) {
        connect(edit, &QLineEdit::textChanged, this, &CreatePage::refresh);
    }
    for (QCheckBox* check : m_sizeChecks) {
        connect(check, &QCheckBox::toggled, this, &CreatePage::refresh);
    }
    for (QCheckBox* check : {m_layerNormCheck, m_useDropoutCheck, m_activateOutputCheck,
                             m_skipConnectionCheck, m_upsampleLinearCheck}) {
        connect(check, &QCheckBox::toggled, this, &CreatePage::refresh);
    }
    for (QComboBox* combo : {m_activationCombo, m_weightInitCombo}) {
        connect(combo, &QComboBox::currentIndexChanged, this, &CreatePage::refresh);
    }
    connect(m_useDropoutCheck, &QCheckBox::toggled, m_dropoutEdit, &QWidget::setEnabled);
    connect(m_skipConnectionCheck, &QCheckBox::toggled, m_upsampleLinearCheck,
            &QWidget::setEnabled);
    connect(m_advancedToggle, &QToolButton::toggled, this, &CreatePage::setAdvancedVisible);
}

void CreatePage::setAdvancedVisible(bool visible)
{
    m_advancedPanel->setVisible(visible);
    m_advancedToggle->setArrowType(visible ? Qt::DownArrow : Qt::RightArrow);
}

void CreatePage::browseOutputFolder()
{
    const QString folder =
        QFileDialog::getExistingDirectory(this, tr("Output folder"), m_outputFolderEdit->text());
    if (!folder.isEmpty()) {
        m_outputFolderEdit->setText(QDir::toNativeSeparators(folder));
    }
}

// The webui keeps only alphanumerics and "._- " in a hypernetwork's name.
QString CreatePage::sanitizedName() const
{
    QString result;
    for (const QChar c : m_nameEdit->text()) {
        if (c.isLetterOrNumber() || QStringLiteral("._- ").contains(c)) {
            result += c;
        }
    }
    return result.trimmed();
}

QString CreatePage::outputPath() const
{
    const QString name = sanitizedName();
    const QString folder = m_outputFolderEdit->text().trimmed();
    if (name.isEmpty() || folder.isEmpty()) {
        return {};
    }
    return QDir(QDir::fromNativeSeparators(folder)).filePath(name + QStringLiteral(".pt"));
}

// Everything but the lists and numbers typed as text, which readStructure and readAdvanced
// parse one at a time so that an error is blamed on the field that caused it.
HypernetworkConfig CreatePage::baseConfig() const
{
    HypernetworkConfig config;
    config.name = sanitizedName();
    config.sizes.clear();
    for (const QCheckBox* check : m_sizeChecks) {
        if (check->isChecked()) {
            config.sizes.push_back(check->property("moduleSize").toInt());
        }
    }
    config.activation = m_activationCombo->currentText();
    config.layerNorm = m_layerNormCheck->isChecked();
    config.activateOutput = m_activateOutputCheck->isChecked();
    config.useDropout = m_useDropoutCheck->isChecked();
    config.weightInit = static_cast<WeightInit>(m_weightInitCombo->currentData().toInt());
    config.skipConnection = m_skipConnectionCheck->isChecked();
    config.writeExtensionKeys = config.skipConnection;
    if (config.skipConnection && m_upsampleLinearCheck->isChecked()) {
        config.upsampleLinear = QStringLiteral("Linear");
    }
    if (!m_infoEdit->text().trimmed().isEmpty()) {
        config.optionalInfo = m_infoEdit->text().trimmed();
    }
    return config;
}

bool CreatePage::readStructure(FormState& state) const
{
    HypernetworkConfig& config = state.config;
    // The sizes with the default structure first: an error now is the sizes' own.
    if (!attempt(state, m_sizesRow, [&] { validate(config, /*forCreation=*/true); })) {
        return false;
    }
    const bool layersOk = attempt(state, m_layersEdit, [&] {
        // The webui parses the form's text as floats; an unused dropout list is ints.
        config.layerStructure = parseNumberList(m_layersEdit->text(), tr("layer structure"));
        config.layerStructureIntegerItems.clear();
        config.dropoutStructure.assign(config.layerStructure.size(), 0.0);
        config.dropoutStructureIntegerItems.assign(config.layerStructure.size(), true);
        validate(config, /*forCreation=*/true);
    });
    if (!layersOk || !config.useDropout) {
        return layersOk;
    }
    return attempt(state, m_dropoutEdit, [&] {
        config.dropoutStructure = parseNumberList(m_dropoutEdit->text(), tr("dropout structure"));
        config.dropoutStructureIntegerItems.clear();
        validate(config, /*forCreation=*/true);
    });
}

bool CreatePage::readAdvanced(FormState& state) const
{
    HypernetworkConfig& config = state.config;
    const bool stdOk = attempt(state, m_normalStdEdit, [&] {
        config.normalStd = parseStd(m_normalStdEdit->text());
        validate(config, /*forCreation=*/true);
    });
    return stdOk &&
           attempt(state, m_seedEdit, [&] { config.initSeed = parseSeed(m_seedEdit->text()); });
}

CreatePage::FormState CreatePage::readForm() const
{
    FormState state;
    state.config = baseConfig();
    if (!readStructure(state) || !readAdvanced(state)) {
        return state;
    }
    state.parameters = countParameters(state.config);
    state.fileBytes = estimateFileBytes(state.config);
    if (state.fileBytes >= kFileLimit) {
        state.problem = tr("layer structure '%1' makes a file of %2; .pt files are limited to "
                           "4 GiB, so use smaller multipliers or fewer modules")
                            .arg(formatNumberList(state.config.layerStructure),
                                 QLocale().formattedDataSize(state.fileBytes));
        state.field = m_layersEdit;
    } else if (m_outputFolderEdit->text().trimmed().isEmpty()) {
        state.problem = tr("output folder: choose the folder NAME.pt is written to");
        state.field = m_outputFolderEdit;
    } else if (state.config.name.isEmpty()) {
        state.hint = m_nameEdit->text().trimmed().isEmpty();
        state.problem = state.hint ? tr("Give the hypernetwork a name to create it.")
                                   : tr("name '%1' has no letters or digits; only letters, "
                                        "digits and '._- ' are kept, as in the webui")
                                         .arg(m_nameEdit->text());
        state.field = m_nameEdit;
    }
    return state;
}

void CreatePage::refresh()
{
    m_state = readForm();
    showState();
}

void CreatePage::markField(QWidget* field, const QString& reason)
{
    if (!field->property("invalid").toBool()) {
        field->setProperty("baseToolTip", field->toolTip());
        m_markedFields << field;
    }
    field->setProperty("invalid", true);
    field->setStyleSheet(
        QStringLiteral("#%1 { border: 1px solid %2; }").arg(field->objectName(), kErrorColor));
    field->setToolTip(reason + QStringLiteral("\n\n") + field->property("baseToolTip").toString());
}

void CreatePage::showState()
{
    for (QWidget* field : std::as_const(m_markedFields)) {
        if (field != m_state.field || m_state.hint) {
            field->setProperty("invalid", false);
            field->setStyleSheet(QString());
            field->setToolTip(field->property("baseToolTip").toString());
        }
    }
    m_markedFields.removeIf([](QWidget* field) { return !field->property("invalid").toBool(); });
    if (m_state.field && !m_state.hint) {
        markField(m_state.field, m_state.problem);
    }

    m_problemLabel->setText(m_state.problem);
    m_problemLabel->setStyleSheet(m_state.hint ? QStringLiteral("color: palette(mid);")
                                               : QStringLiteral("color: %1;").arg(kErrorColor));
    m_problemLabel->setVisible(!m_state.problem.isEmpty());

    const bool known = m_state.parameters >= 0;
    m_parameterLabel->setText(
        known ? tr("%1 parameters").arg(QLocale().toString(qlonglong{m_state.parameters}))
              : tr("– parameters"));
    m_fileSizeLabel->setText(
        known ? tr("about %1 on disk").arg(QLocale().formattedDataSize(m_state.fileBytes))
              : QString());

    const QString path = outputPath();
    m_outputPathLabel->setText(
        path.isEmpty() ? QString() : tr("Writes %1").arg(QDir::toNativeSeparators(path)));
    m_createButton->setEnabled(m_state.problem.isEmpty() && !isCreating());
}

void CreatePage::create()
{
    refresh();
    if (!m_state.problem.isEmpty() || isCreating()) {
        return;
    }
    const QString path = outputPath();
    if (prepareOutput(path)) {
        startWorker(m_state.config, path);
    }
}

bool CreatePage::prepareOutput(const QString& path)
{
    const QFileInfo info(path);
    const QString shown = QDir::toNativeSeparators(path);
    QString error;
    if (info.isDir()) {
        error = tr("'%1' is a folder; choose another name").arg(shown);
    } else if (info.exists() && !m_confirmOverwrite(path)) {
        m_statusLabel->setStyleSheet(QString());
        m_statusLabel->setText(tr("Kept the existing '%1'; nothing was written.").arg(shown));
        return false;
    } else if (!QDir().mkpath(info.absolutePath())) {
        error = tr("cannot create the output folder '%1'; choose a folder you can write to")
                    .arg(QDir::toNativeSeparators(info.absolutePath()));
    }
    if (!error.isEmpty()) {
        finishCreate({}, error);
    }
    return error.isEmpty();
}

void CreatePage::startWorker(const HypernetworkConfig& config, const QString& path)
{
    // Initialising and writing a full-size hypernetwork takes a second or more: off the UI
    // thread, with every error turned into a message before it could cross threads.
    QThread* thread = QThread::create([this, config, path] {
        HypernetworkSummary summary;
        QString error;
        try {
            summary = createHypernetworkFile(config, path);
        } catch (const std::exception& exception) {
            error = QString::fromUtf8(exception.what());
        } catch (...) {
            error = QStringLiteral("writing '%1' failed for an unknown reason")
                        .arg(QDir::toNativeSeparators(path));
        }
        QMetaObject::invokeMethod(
            this, [this, summary, error] { finishCreate(summary, error); }, Qt::QueuedConnection);
    });
    thread->setObjectName(QStringLiteral("createHypernetwork"));
    connect(thread, &QThread::finished, thread, &QObject::deleteLater);
    m_worker = thread;
    m_creating = true;
    m_statusLabel->setStyleSheet(QString());
    m_statusLabel->setText(tr("Creating %1…").arg(QDir::toNativeSeparators(path)));
    showState();
    thread->start();
}

void CreatePage::finishCreate(const HypernetworkSummary& summary, const QString& error)
{
    m_creating = false;
    if (!error.isEmpty()) {
        m_statusLabel->setStyleSheet(QStringLiteral("color: %1;").arg(kErrorColor));
        m_statusLabel->setText(tr("Not created: %1").arg(error));
        showState();
        return;
    }
    m_statusLabel->setStyleSheet(QString());
    m_statusLabel->setText(tr("Created %1: %2 parameters, %3, hash %4")
                               .arg(QDir::toNativeSeparators(summary.path),
                                    QLocale().toString(qlonglong{summary.parameterCount}),
                                    QLocale().formattedDataSize(summary.fileBytes),
                                    summary.shortHash));
    showState();
    Q_EMIT hypernetworkCreated(summary.path);
}

} // namespace studio::ui
