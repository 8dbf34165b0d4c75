#include "ui/RunsPage.h"

#include "core/Error.h"
#include "core/train/RunConfig.h"
#include "core/train/RunFolder.h"
#include "core/train/Trainer.h"
#include "ui/Background.h"
#include "ui/LearningRatePlot.h"
#include "ui/LossPlot.h"
#include "ui/PreviewGallery.h"
#include "ui/Settings.h"

#include <QDir>
#include <QFile>
#include <QFileDialog>
#include <QFileInfo>
#include <QHBoxLayout>
#include <QLabel>
#include <QLineEdit>
#include <QListWidget>
#include <QPlainTextEdit>
#include <QPushButton>
#include <QSettings>
#include <QSplitter>
#include <QToolButton>
#include <QVBoxLayout>

#include <optional>
#include <vector>

namespace studio::ui {

namespace {

const QString kRunsFolderKey = QStringLiteral("runs/folder");

} // namespace

// Everything of a run folder, read off the UI thread.
struct RunsPage::RunContents
{
    std::vector<LossRow> rows;
    std::vector<RunPreviewImage> previews;
    QString runJson;
    std::optional<LrScheduleSpec> plan;
    QStringList problems;
};

namespace {

QString readText(const QString& path, QString& problem)
{
    QFile file(path);
    if (!file.open(QIODevice::ReadOnly)) {
        problem = QObject::tr("cannot read '%1': %2")
                      .arg(QDir::toNativeSeparators(path), file.errorString());
        return QString();
    }
    return QString::fromUtf8(file.readAll());
}

// The schedule the run trained with, from the step its loss.csv starts at.
std::optional<LrScheduleSpec>
plannedSchedule(const QString& runJson, const std::vector<LossRow>& rows, QStringList& problems)
{
    try {
        const RunConfig config = readRunConfig(runJson);
        const int64_t first = rows.empty() ? 0 : std::max<int64_t>(0, rows.front().step - 1);
        return config.scheduleSpec(first);
    } catch (const Error& error) {
        problems << error.message();
        return std::nullopt;
    }
}

} // namespace

RunsPage::RunsPage(QWidget* parent) : QWidget(parent)
{
    auto* splitter = new QSplitter(Qt::Horizontal, this);
    splitter->addWidget(buildRunList());
    splitter->addWidget(buildRunView());
    splitter->setStretchFactor(0, 1);
    splitter->setStretchFactor(1, 3);
    auto* layout = new QVBoxLayout(this);
    layout->addWidget(splitter);

    // The folder looked at last time, else where the studio puts new runs.
    const QString folder =
        QSettings().value(kRunsFolderKey, Settings::load().outputFolder).toString();
    if (!folder.isEmpty()) {
        setRunsFolder(folder);
    }
    setStatus(tr("Choose a folder of runs, or open one run folder."));
}

QWidget* RunsPage::buildRunList()
{
    auto* panel = new QWidget(this);
    m_folderEdit = new QLineEdit(panel);
    m_folderEdit->setObjectName(QStringLiteral("runsFolder"));
    m_folderEdit->setPlaceholderText(tr("Folder of runs"));
    auto* browse = new QToolButton(panel);
    browse->setText(tr("…"));
    browse->setToolTip(tr("Choose the folder that holds run folders"));
    auto* refresh = new QToolButton(panel);
    refresh->setText(tr("Refresh"));
    auto* folderRow = new QHBoxLayout;
    folderRow->addWidget(m_folderEdit, 1);
    folderRow->addWidget(browse);
    folderRow->addWidget(refresh);

    m_runList = new QListWidget(panel);
    m_runList->setObjectName(QStringLiteral("runList"));
    auto* openOne = new QPushButton(tr("Open a run folder…"), panel);

    auto* layout = new QVBoxLayout(panel);
    layout->setContentsMargins(0, 0, 0, 0);
    layout->addLayout(folderRow);
    layout->addWidget(m_runList, 1);
    layout->addWidget(openOne);

    connect(m_folderEdit, &QLineEdit::editingFinished, this,
            [this] { setRunsFolder(m_folderEdit->text()); });
    connect(browse, &QToolButton::clicked, this, &RunsPage::chooseRunsFolder);
    connect(refresh, &QToolButton::clicked, this, &RunsPage::refreshList);
    connect(openOne, &QPushButton::clicked, this, &RunsPage::chooseRunFolder);
    connect(m_runList, &QListWidget::currentItemChanged, this, [this](QListWidgetItem* item) {
        if (item != nullptr) {
            openRun(item->data(Qt::UserRole).toString());
        }
    });
    return panel;
}

QWidget* RunsPage::buildRunView()
{
    auto* view = new QWidget(this);
    m_status = new QLabel(view);
    m_status->setObjectName(QStringLiteral("runStatus"));
    m_status->setWordWrap(true);
    m_status->setTextInteractionFlags(Qt::TextSelectableByMouse);

    m_lossPlot = new LossPlot(view);
    m_learningRatePlot = new LearningRatePlot(view);
    auto* plots = new QSplitter(Qt::Horizontal, view);
    plots->addWidget(m_lossPlot);
    plots->addWidget(m_learningRatePlot);
    m_gallery = new PreviewGallery(view);

    m_runJson = new QPlainTextEdit(view);
    m_runJson->setObjectName(QStringLiteral("runJson"));
    m_runJson->setReadOnly(true);
    m_runJson->setLineWrapMode(QPlainTextEdit::NoWrap);
    m_loadButton = new QPushButton(tr("Load into Train"), view);
    m_loadButton->setObjectName(QStringLiteral("loadRunButton"));
    m_loadButton->setToolTip(tr("Fill the Train page with this run.json, to train it again or "
                                "to continue from one of its saves."));
    m_loadButton->setEnabled(false);
    auto* jsonPane = new QWidget(view);
    auto* jsonLayout = new QVBoxLayout(jsonPane);
    jsonLayout->setContentsMargins(0, 0, 0, 0);
    jsonLayout->addWidget(m_runJson, 1);
    jsonLayout->addWidget(m_loadButton, 0, Qt::AlignRight);

    auto* panes = new QSplitter(Qt::Vertical, view);
    panes->addWidget(plots);
    panes->addWidget(m_gallery);
    panes->addWidget(jsonPane);
    auto* layout = new QVBoxLayout(view);
    layout->setContentsMargins(0, 0, 0, 0);
    layout->addWidget(m_status);
    layout->addWidget(panes, 1);

    connect(m_loadButton, &QPushButton::clicked, this,
            [this] { Q_EMIT loadRunRequested(Trainer::runJsonPath(m_openedRun)); });
    return view;
}

// --- the list of runs --------------------------------------------------------------------------

void RunsPage::setRunsFolder(const QString& folder)
{
    m_folderEdit->setText(QDir::toNativeSeparators(folder));
    QSettings().setValue(kRunsFolderKey, folder);
    refreshList();
}

QString RunsPage::runsFolder() const
{
    return QDir::fromNativeSeparators(m_folderEdit->text().trimmed());
}

QStringList RunsPage::listedRuns() const
{
    QStringList runs;
    for (int i = 0; i < m_runList->count(); ++i) {
        runs << m_runList->item(i)->data(Qt::UserRole).toString();
    }
    return runs;
}

void RunsPage::refreshList()
{
    const QSignalBlocker blocker(m_runList);
    m_runList->clear();
    // Listing reads one directory: quick enough here, unlike the runs themselves.
    for (const QString& run : findRunFolders(runsFolder())) {
        auto* item = new QListWidgetItem(QFileInfo(run).fileName(), m_runList);
        item->setData(Qt::UserRole, run);
        item->setToolTip(QDir::toNativeSeparators(run));
    }
}

void RunsPage::chooseRunsFolder()
{
    const QString folder =
        QFileDialog::getExistingDirectory(this, tr("Folder of runs"), runsFolder());
    if (!folder.isEmpty()) {
        setRunsFolder(folder);
    }
}

void RunsPage::chooseRunFolder()
{
    const QString folder =
        QFileDialog::getExistingDirectory(this, tr("Open a run folder"), runsFolder());
    if (!folder.isEmpty()) {
        openRun(folder);
    }
}

// --- one run -----------------------------------------------------------------------------------

void RunsPage::openRun(const QString& runFolder)
{
    const quint64 request = ++m_request;
    if (!isRunFolder(runFolder)) {
        setStatus(tr("'%1' is not a run folder: it has neither run.json nor loss.csv.")
                      .arg(QDir::toNativeSeparators(runFolder)),
                  true);
        return;
    }

    setStatus(tr("Reading %1…").arg(QDir::toNativeSeparators(runFolder)));
    runInBackground(
        this,
        [runFolder] {
            RunContents contents;
            try {
                contents.rows = readLossCsv(Trainer::lossCsvPath(runFolder));
            } catch (const Error& error) {
                contents.problems << error.message();
            }
            contents.previews = runPreviewImages(runFolder);
            const QString runJson = Trainer::runJsonPath(runFolder);
            QString problem;
            contents.runJson = readText(runJson, problem);
            if (problem.isEmpty()) {
                contents.plan = plannedSchedule(runJson, contents.rows, contents.problems);
            } else {
                contents.problems << problem;
            }
            return contents;
        },
        [this, request, runFolder](const RunContents& contents) {
            if (request == m_request) {
                showRun(runFolder, contents);
            }
        });
}

void RunsPage::showRun(const QString& runFolder, const RunContents& contents)
{
    m_openedRun = runFolder;
    std::vector<double> steps;
    std::vector<double> losses;
    std::vector<double> rates;
    for (const LossRow& row : contents.rows) {
        steps.push_back(static_cast<double>(row.step));
        losses.push_back(row.loss);
        rates.push_back(row.learningRate);
    }
    m_lossPlot->setPoints(steps, losses);
    m_learningRatePlot->setUsed(steps, rates);
    if (contents.plan) {
        m_learningRatePlot->setPlan(*contents.plan);
    } else {
        m_learningRatePlot->clearPlan();
    }

    m_gallery->clear();
    for (const RunPreviewImage& preview : contents.previews) {
        m_gallery->addPreview(preview.step, preview.path);
    }
    m_runJson->setPlainText(contents.runJson);
    m_loadButton->setEnabled(!contents.runJson.isEmpty());

    QString text =
        tr("%1: %2 steps").arg(QDir::toNativeSeparators(runFolder)).arg(contents.rows.size());
    if (!contents.rows.empty()) {
        text += tr(", last loss %1").arg(contents.rows.back().loss);
    }
    text += tr(", %1 previews").arg(contents.previews.size());
    if (!contents.problems.isEmpty()) {
        text += QStringLiteral("\n") + contents.problems.join(QLatin1Char('\n'));
    }
    setStatus(text, !contents.problems.isEmpty());
    Q_EMIT runOpened(runFolder);
}

QString RunsPage::runJsonText() const
{
    return m_runJson->toPlainText();
}

QString RunsPage::statusText() const
{
    return m_status->text();
}

void RunsPage::setStatus(const QString& text, bool problem)
{
    m_status->setText(text);
    m_status->setStyleSheet(problem ? QStringLiteral("color: #b00020;") : QString());
}

} // namespace studio::ui
