#include "ui/SettingsDialog.h"

#include "core/EngineInfo.h"

#include <QComboBox>
#include <QDialogButtonBox>
#include <QDir>
#include <QFileDialog>
#include <QFormLayout>
#include <QHBoxLayout>
#include <QLabel>
#include <QLineEdit>
#include <QPushButton>
#include <QSpinBox>
#include <QThread>
#include <QVBoxLayout>

namespace studio::ui {

namespace {

// A line edit with a "Browse…" button beside it, as one form row.
QWidget* withBrowseButton(QLineEdit* edit, QPushButton* button)
{
    auto* row = new QWidget;
    auto* layout = new QHBoxLayout(row);
    layout->setContentsMargins(0, 0, 0, 0);
    layout->addWidget(edit, 1);
    layout->addWidget(button);
    return row;
}

} // namespace

SettingsDialog::SettingsDialog(const Settings& settings, QWidget* parent) : QDialog(parent)
{
    setWindowTitle(tr("Settings"));
    setMinimumWidth(560); // room for a full output folder path
    setupUi();
    setValues(settings);
    refresh();
}

void SettingsDialog::setupUi()
{
    auto* form = new QFormLayout;

    m_deviceCombo = new QComboBox(this);
    m_deviceCombo->setObjectName(QStringLiteral("deviceCombo"));
    m_deviceCombo->addItems(engineInfo().devices);
    m_deviceCombo->setToolTip(tr("Where training and generation run."));
    m_deviceNote = new QLabel(this);
    m_deviceNote->setObjectName(QStringLiteral("deviceNote"));
    m_deviceNote->setWordWrap(true);
    form->addRow(tr("&Device"), m_deviceCombo);
    form->addRow(QString(), m_deviceNote);

    m_precisionCombo = new QComboBox(this);
    m_precisionCombo->setObjectName(QStringLiteral("precisionCombo"));
    m_precisionCombo->addItems(Settings::precisionChoices());
    m_precisionCombo->setToolTip(tr("Weights of the frozen model: fp32, fp16 (CUDA only) or "
                                    "bf16. The hypernetwork always trains in fp32."));
    form->addRow(tr("&Precision"), m_precisionCombo);

    m_threadsSpin = new QSpinBox(this);
    m_threadsSpin->setObjectName(QStringLiteral("threadsSpin"));
    m_threadsSpin->setRange(0, std::max(256, QThread::idealThreadCount()));
    m_threadsSpin->setSpecialValueText(tr("Default (%1)").arg(engineInfo().cpuThreads));
    m_threadsSpin->setToolTip(tr("CPU threads LibTorch uses; applied at once."));
    form->addRow(tr("CPU &threads"), m_threadsSpin);

    m_tokenizerEdit = new QLineEdit(this);
    m_tokenizerEdit->setObjectName(QStringLiteral("tokenizerEdit"));
    m_tokenizerEdit->setPlaceholderText(tr("search beside the checkpoint and in the HF cache"));
    m_tokenizerEdit->setToolTip(tr("A CLIP vocabulary: bpe_simple_vocab_16e6.txt[.gz] or "
                                   "vocab.json (with merges.txt beside it)."));
    auto* browseTokenizer = new QPushButton(tr("Browse…"), this);
    connect(browseTokenizer, &QPushButton::clicked, this, &SettingsDialog::browseTokenizer);
    form->addRow(tr("T&okenizer"), withBrowseButton(m_tokenizerEdit, browseTokenizer));

    m_outputFolderEdit = new QLineEdit(this);
    m_outputFolderEdit->setObjectName(QStringLiteral("outputFolderEdit"));
    m_outputFolderEdit->setToolTip(tr("Where new hypernetworks and runs are written."));
    auto* browseOutput = new QPushButton(tr("Browse…"), this);
    connect(browseOutput, &QPushButton::clicked, this, &SettingsDialog::browseOutputFolder);
    form->addRow(tr("&Output folder"), withBrowseButton(m_outputFolderEdit, browseOutput));

    m_problemLabel = new QLabel(this);
    m_problemLabel->setObjectName(QStringLiteral("settingsProblemLabel"));
    m_problemLabel->setWordWrap(true);
    m_problemLabel->setStyleSheet(QStringLiteral("color: #c62828;"));

    m_buttons = new QDialogButtonBox(QDialogButtonBox::Ok | QDialogButtonBox::Cancel, this);
    m_buttons->setObjectName(QStringLiteral("settingsButtons"));
    connect(m_buttons, &QDialogButtonBox::accepted, this, &SettingsDialog::accept);
    connect(m_buttons, &QDialogButtonBox::rejected, this, &SettingsDialog::reject);

    auto* layout = new QVBoxLayout(this);
    layout->addLayout(form);
    layout->addWidget(m_problemLabel);
    layout->addStretch();
    layout->addWidget(m_buttons);

    connect(m_deviceCombo, &QComboBox::currentIndexChanged, this, &SettingsDialog::refresh);
    connect(m_precisionCombo, &QComboBox::currentIndexChanged, this, &SettingsDialog::refresh);
    connect(m_threadsSpin, &QSpinBox::valueChanged, this, &SettingsDialog::refresh);
    connect(m_outputFolderEdit, &QLineEdit::textChanged, this, &SettingsDialog::refresh);
}

void SettingsDialog::setValues(const Settings& settings)
{
    const int device = m_deviceCombo->findText(settings.device);
    m_deviceCombo->setCurrentIndex(std::max(device, 0));
    // A device saved on another machine, or a GPU that is gone, falls back to the cpu openly.
    m_deviceNote->setText(
        device < 0 ? tr("%1 is not available here; cpu is selected.").arg(settings.device)
                   : QString());
    m_deviceNote->setVisible(device < 0);
    m_precisionCombo->setCurrentIndex(std::max(m_precisionCombo->findText(settings.precision), 0));
    m_threadsSpin->setValue(settings.threads);
    m_tokenizerEdit->setText(QDir::toNativeSeparators(settings.tokenizerPath));
    m_outputFolderEdit->setText(QDir::toNativeSeparators(settings.outputFolder));
}

Settings SettingsDialog::settings() const
{
    Settings settings;
    settings.device = m_deviceCombo->currentText();
    settings.precision = m_precisionCombo->currentText();
    settings.threads = m_threadsSpin->value();
    settings.tokenizerPath = QDir::fromNativeSeparators(m_tokenizerEdit->text().trimmed());
    settings.outputFolder = QDir::fromNativeSeparators(m_outputFolderEdit->text().trimmed());
    return settings;
}

void SettingsDialog::refresh()
{
    const QString problem = settings().problem();
    m_problemLabel->setText(problem);
    m_problemLabel->setVisible(!problem.isEmpty());
    m_buttons->button(QDialogButtonBox::Ok)->setEnabled(problem.isEmpty());
}

void SettingsDialog::accept()
{
    const Settings chosen = settings();
    if (!chosen.problem().isEmpty()) {
        return;
    }
    chosen.save();
    applyEngineSettings(chosen);
    QDialog::accept();
}

void SettingsDialog::browseTokenizer()
{
    const QString path =
        QFileDialog::getOpenFileName(this, tr("CLIP vocabulary"), m_tokenizerEdit->text(),
                                     tr("CLIP vocabularies (*.txt *.gz *.json);;All files (*)"));
    if (!path.isEmpty()) {
        m_tokenizerEdit->setText(QDir::toNativeSeparators(path));
    }
}

void SettingsDialog::browseOutputFolder()
{
    const QString folder =
        QFileDialog::getExistingDirectory(this, tr("Output folder"), m_outputFolderEdit->text());
    if (!folder.isEmpty()) {
        m_outputFolderEdit->setText(QDir::toNativeSeparators(folder));
    }
}

} // namespace studio::ui
