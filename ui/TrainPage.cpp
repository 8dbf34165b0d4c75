#include "ui/TrainPage.h"

#include "core/Error.h"
#include "ui/LearningRatePlot.h"
#include "ui/LossPlot.h"
#include "ui/PreviewGallery.h"
#include "ui/RunForm.h"
#include "ui/Settings.h"
#include "ui/TrainingWorker.h"

#include <QDir>
#include <QFileDialog>
#include <QHBoxLayout>
#include <QLabel>
#include <QLocale>
#include <QPlainTextEdit>
#include <QProgressBar>
#include <QPushButton>
#include <QSplitter>
#include <QVBoxLayout>

#include <cmath>

namespace studio::ui {

namespace {

// The trainer logs a line or two per save and preview; this keeps a long run's log bounded.
constexpr int kMaxLogLines = 5000;

QString durationText(double seconds)
{
    const auto total = static_cast<qint64>(std::llround(std::max(0.0, seconds)));
    return QStringLiteral("%1:%2:%3")
        .arg(total / 3600)
        .arg((total / 60) % 60, 2, 10, QLatin1Char('0'))
        .arg(total % 60, 2, 10, QLatin1Char('0'));
}

QString statusOf(const TrainingResult& result)
{
    switch (result.status) {
    case TrainingStatus::Finished:
        return QObject::tr("Finished: %1.").arg(result.message);
    case TrainingStatus::Cancelled:
        return QObject::tr("Stopped: %1.").arg(result.message);
    case TrainingStatus::Diverged:
        return QObject::tr("Diverged: %1").arg(result.message);
    }
    return result.message;
}

} // namespace

TrainPage::TrainPage(QWidget* parent) : QWidget(parent)
{
    m_form = new RunForm(this);
    m_form->setMinimumWidth(360);
    m_worker = new TrainingWorker(this);

    auto* splitter = new QSplitter(Qt::Horizontal, this);
    splitter->addWidget(m_form);
    splitter->addWidget(buildMonitor());
    splitter->setStretchFactor(0, 2);
    splitter->setStretchFactor(1, 3);
    auto* layout = new QVBoxLayout(this);
    layout->addWidget(splitter);

    connect(m_form, &RunForm::changed, this, &TrainPage::onFormChanged);
    connect(m_worker, &TrainingWorker::message, this, &TrainPage::appendLog);
    connect(m_worker, &TrainingWorker::stepDone, this, &TrainPage::onStep);
    connect(m_worker, &TrainingWorker::previewReady, this, &TrainPage::onPreview);
    connect(m_worker, &TrainingWorker::finished, this, &TrainPage::onFinished);
    connect(m_worker, &TrainingWorker::failed, this, &TrainPage::onFailed);
    connect(m_worker, &TrainingWorker::pausedChanged, this, &TrainPage::updateButtons);

    // A new run starts from the studio's settings for the engine.
    const Settings settings = Settings::load();
    RunConfig initial;
    initial.model.tokenizer = settings.tokenizerPath;
    initial.training.device = settings.device;
    initial.training.precision = settings.precision;
    m_form->setRunConfig(initial);

    onFormChanged();
    updateButtons();
    setStatus(tr("Set up a run and press Start."));
}

TrainPage::~TrainPage()
{
    // The run's last signals would reach a page that is half destroyed; it ends unheard.
    m_worker->disconnect(this);
    m_worker->stopAndWait();
}

QWidget* TrainPage::buildMonitor()
{
    auto* monitor = new QWidget(this);
    m_progress = new QProgressBar(monitor);
    m_progress->setObjectName(QStringLiteral("trainingProgress"));
    m_progress->setFormat(QStringLiteral("%v / %m"));
    m_stepInfo = new QLabel(monitor);
    m_stepInfo->setObjectName(QStringLiteral("stepInfo"));
    m_status = new QLabel(monitor);
    m_status->setObjectName(QStringLiteral("trainingStatus"));
    m_status->setWordWrap(true);
    m_status->setTextInteractionFlags(Qt::TextSelectableByMouse);

    m_lossPlot = new LossPlot(monitor);
    m_learningRatePlot = new LearningRatePlot(monitor);
    auto* plots = new QSplitter(Qt::Horizontal, monitor);
    plots->addWidget(m_lossPlot);
    plots->addWidget(m_learningRatePlot);

    m_gallery = new PreviewGallery(monitor);
    m_log = new QPlainTextEdit(monitor);
    m_log->setObjectName(QStringLiteral("trainingLog"));
    m_log->setReadOnly(true);
    m_log->setMaximumBlockCount(kMaxLogLines);

    auto* panes = new QSplitter(Qt::Vertical, monitor);
    panes->addWidget(plots);
    panes->addWidget(m_gallery);
    panes->addWidget(m_log);
    panes->setStretchFactor(0, 3);
    panes->setStretchFactor(1, 2);
    panes->setStretchFactor(2, 1);

    auto* layout = new QVBoxLayout(monitor);
    layout->setContentsMargins(0, 0, 0, 0);
    layout->addWidget(buildControls());
    layout->addWidget(m_progress);
    layout->addWidget(m_stepInfo);
    layout->addWidget(m_status);
    layout->addWidget(panes, 1);
    return monitor;
}

QWidget* TrainPage::buildControls()
{
    auto* controls = new QWidget(this);
    const auto button = [controls](const QString& text, const char* name) {
        auto* pushButton = new QPushButton(text, controls);
        pushButton->setObjectName(QLatin1String(name));
        return pushButton;
    };
    m_startButton = button(tr("Start"), "startButton");
    m_pauseButton = button(tr("Pause"), "pauseButton");
    m_stopButton = button(tr("Stop"), "stopButton");
    m_openButton = button(tr("Open run…"), "openRunButton");
    m_saveButton = button(tr("Save run…"), "saveRunButton");

    auto* layout = new QHBoxLayout(controls);
    layout->setContentsMargins(0, 0, 0, 0);
    for (QPushButton* b : {m_startButton, m_pauseButton, m_stopButton}) {
        layout->addWidget(b);
    }
    layout->addStretch(1);
    layout->addWidget(m_openButton);
    layout->addWidget(m_saveButton);

    connect(m_startButton, &QPushButton::clicked, this, &TrainPage::start);
    connect(m_pauseButton, &QPushButton::clicked, this,
            [this] { isPaused() ? resume() : pause(); });
    connect(m_stopButton, &QPushButton::clicked, this, &TrainPage::stop);
    connect(m_openButton, &QPushButton::clicked, this, &TrainPage::chooseRunFileToOpen);
    connect(m_saveButton, &QPushButton::clicked, this, &TrainPage::chooseRunFileToSave);
    return controls;
}

// --- the fields --------------------------------------------------------------------------------

void TrainPage::setRunConfig(const RunConfig& config)
{
    m_form->setRunConfig(config);
}

std::optional<RunConfig> TrainPage::runConfig() const
{
    return m_form->read().config;
}

QString TrainPage::validationMessage() const
{
    return m_form->read().problem;
}

void TrainPage::onFormChanged()
{
    if (isTraining()) {
        return; // the plot shows the plan of the run that trains
    }
    const FormReading reading = m_form->read();
    if (reading.schedule) {
        m_learningRatePlot->setPlan(*reading.schedule);
    } else {
        m_learningRatePlot->clearPlan();
    }
}

void TrainPage::useHypernetworkFile(const QString& path)
{
    m_form->useHypernetworkFile(path);
}

// --- training ----------------------------------------------------------------------------------

bool TrainPage::start()
{
    if (isTraining()) {
        return false;
    }
    const FormReading reading = m_form->read();
    if (!reading.config) {
        setStatus(tr("Cannot start: %1").arg(reading.problem), true);
        return false;
    }

    m_lossPlot->clear();
    m_learningRatePlot->clearUsed();
    if (reading.schedule) {
        m_learningRatePlot->setPlan(*reading.schedule);
    }
    m_gallery->clear();
    m_log->clear();
    m_lastRecord = StepRecord();
    m_progress->setRange(0, static_cast<int>(reading.config->training.steps));
    m_progress->setValue(static_cast<int>(m_form->continuedStep()));
    m_stepInfo->clear();

    m_form->setFieldsEnabled(false);
    m_worker->start(*reading.config);
    setStatus(tr("Loading the model and the dataset…"));
    updateButtons();
    Q_EMIT trainingStarted();
    return true;
}

void TrainPage::pause()
{
    m_worker->pause();
    if (isTraining()) {
        setStatus(tr("Paused after the current step. Resume continues exactly where it left."));
    }
}

void TrainPage::resume()
{
    m_worker->resume();
    if (isTraining()) {
        setStatus(tr("Training."));
    }
}

void TrainPage::stop()
{
    if (isTraining()) {
        m_worker->stop();
        setStatus(tr("Stopping after the current step; it will be saved."));
        m_stopButton->setEnabled(false);
    }
}

void TrainPage::stopAndWait()
{
    m_worker->stopAndWait();
}

bool TrainPage::isTraining() const
{
    return m_worker->isRunning();
}

bool TrainPage::isPaused() const
{
    return m_worker->isPaused();
}

void TrainPage::onStep(const StepRecord& record)
{
    m_lastRecord = record;
    m_lossPlot->addPoint(static_cast<double>(record.step), record.loss);
    m_learningRatePlot->addUsed(static_cast<double>(record.step), record.learningRate);

    m_progress->setRange(0, static_cast<int>(record.totalSteps));
    m_progress->setValue(static_cast<int>(record.step));
    m_stepInfo->setText(tr("step %1 of %2 · epoch %3 · %4 s/step · ETA %5 · memory %6")
                            .arg(record.step)
                            .arg(record.totalSteps)
                            .arg(record.epoch + 1)
                            .arg(QString::number(record.secondsPerStep, 'f', 2),
                                 durationText(record.etaSeconds),
                                 QLocale().formattedDataSize(record.residentBytes)));
    if (!isPaused()) {
        setStatus(tr("Training."));
    }
}

void TrainPage::onPreview(const PreviewRecord& preview)
{
    m_gallery->addPreview(preview.step, preview.path);
}

void TrainPage::onFinished(const TrainingResult& result)
{
    setStatus(statusOf(result), result.status == TrainingStatus::Diverged);
    onRunEnded();
    Q_EMIT trainingFinished(result);
}

void TrainPage::onFailed(const QString& message)
{
    appendLog(message);
    setStatus(tr("Training failed: %1").arg(message), true);
    onRunEnded();
    Q_EMIT trainingFailed(message);
}

void TrainPage::onRunEnded()
{
    m_form->setFieldsEnabled(true);
    updateButtons();
}

void TrainPage::updateButtons()
{
    const bool training = isTraining();
    m_startButton->setEnabled(!training);
    m_pauseButton->setEnabled(training);
    m_pauseButton->setText(isPaused() ? tr("Resume") : tr("Pause"));
    m_stopButton->setEnabled(training);
    m_openButton->setEnabled(!training);
}

void TrainPage::setStatus(const QString& text, bool problem)
{
    m_status->setText(text);
    m_status->setStyleSheet(problem ? QStringLiteral("color: #b00020;") : QString());
}

QString TrainPage::statusText() const
{
    return m_status->text();
}

void TrainPage::appendLog(const QString& line)
{
    m_log->appendPlainText(line);
}

// --- run files ---------------------------------------------------------------------------------

bool TrainPage::saveRunFile(const QString& path)
{
    const FormReading reading = m_form->read();
    if (!reading.config) {
        setStatus(tr("Not saved: %1").arg(reading.problem), true);
        return false;
    }
    try {
        writeRunConfig(*reading.config, path);
    } catch (const Error& error) {
        setStatus(tr("Not saved: %1").arg(error.message()), true);
        return false;
    }
    setStatus(tr("Saved the run to %1; `hnstudio train` runs it as it is.")
                  .arg(QDir::toNativeSeparators(path)));
    return true;
}

bool TrainPage::openRunFile(const QString& path)
{
    if (isTraining()) {
        setStatus(tr("A run is training; stop it before opening another."), true);
        return false;
    }
    try {
        m_form->setRunConfig(readRunConfig(path));
    } catch (const Error& error) {
        setStatus(tr("Not opened: %1").arg(error.message()), true);
        return false;
    }
    setStatus(tr("Opened %1.").arg(QDir::toNativeSeparators(path)));
    return true;
}

void TrainPage::chooseRunFileToSave()
{
    const QString path =
        QFileDialog::getSaveFileName(this, tr("Save run"), QString(), tr("Run files (*.json)"));
    if (!path.isEmpty()) {
        saveRunFile(path);
    }
}

void TrainPage::chooseRunFileToOpen()
{
    const QString path =
        QFileDialog::getOpenFileName(this, tr("Open run"), QString(), tr("Run files (*.json)"));
    if (!path.isEmpty()) {
        openRunFile(path);
    }
}

} // namespace studio::ui
