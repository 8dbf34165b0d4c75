#pragma once

// Every field of a run file (docs/run-config.md) as a form: one widget per key, named by the
// key's dotted path ("training.steps"). The form is read through the run-file parser itself
// (runConfigFromJson) and filled from runConfigToJson, so it accepts exactly what
// `hnstudio train` accepts, and a problem the parser reports points at its widget.
//
// Around the fields: what the chosen checkpoint is, what a chosen hypernetwork file holds, the
// dataset's thumbnails with the caption and prompt of each image, and the numbers that follow
// from the fields (images per step, steps per epoch, a cosine cycle in epochs). Everything
// that reads files runs off the UI thread.

#include "core/train/RunConfig.h"

#include <QJsonObject>
#include <QString>
#include <QStringList>
#include <QTimer>
#include <QWidget>

#include <cstdint>
#include <optional>
#include <vector>

class QComboBox;
class QFormLayout;
class QGroupBox;
class QLabel;
class QLineEdit;
class QListWidget;
class QRadioButton;
class QSpinBox;
class QCheckBox;
class QImage;

namespace studio {
struct DatasetPreview;
}

namespace studio::ui {

struct FormReading
{
    std::optional<RunConfig> config; // when every field is valid
    // The learning-rate schedule of the fields, when the training section alone is valid (so
    // the curve can be drawn before the model or the dataset is chosen). Starts at the step of
    // a continued hypernetwork file.
    std::optional<LrScheduleSpec> schedule;
    QString problem; // "training.steps: must be 1 or more, ..."; empty when valid
    QString field;   // the dotted path the problem names, when it names one
};

struct DerivedNumbers
{
    int batchSize = 0;            // after clamping to the dataset, when its size is known
    int gradientAccumulation = 0; // likewise
    int imagesPerStep = 0;        // batch x accumulation
    int datasetImages = -1;       // -1 while unknown
    int64_t stepsPerEpoch = 0;    // 0 while unknown
    double cycleEpochs = 0.0;     // the first cosine cycle in epochs; 0 without cycles / unknown
};

class RunForm : public QWidget
{
    Q_OBJECT

public:
    explicit RunForm(QWidget* parent = nullptr);

    void setRunConfig(const RunConfig& config);
    FormReading read() const;

    // Locks the fields while a run trains; the form still scrolls.
    void setFieldsEnabled(bool enabled);

    // The widget of a run-file key ("training.steps"), or nullptr.
    QWidget* fieldWidget(const QString& path) const;
    // The problem shown under the form; empty when the fields are valid.
    QString shownProblem() const;

    // Continue training this file (a .pt made on the Create page, or a save of an earlier run).
    void useHypernetworkFile(const QString& path);
    // The step stored in the chosen hypernetwork file; 0 for a new one or while unknown.
    int64_t continuedStep() const { return m_continuedStep; }

    DerivedNumbers derivedNumbers() const;
    QString derivedText() const;

    // The dataset as training will see it: -1 while it is being scanned or cannot be used.
    int datasetImageCount() const;
    QStringList datasetCaptions() const;
    QStringList datasetPrompts() const;
    QString modelDescription() const;
    QString hypernetworkFileDescription() const;

Q_SIGNALS:
    // A field changed; emitted once after a burst of typing.
    void changed();
    void datasetScanned();
    void modelDescribed();
    void hypernetworkFileDescribed();

private:
    enum class Kind
    {
        Text,   // QLineEdit, a string
        Number, // QLineEdit, a number
        Whole,  // QLineEdit, a whole number (seeds, which can exceed a spin box)
        Count,  // QSpinBox
        Flag,   // QCheckBox
        Choice, // QComboBox; the item data is the name written in the file
    };

    struct Field
    {
        QString path;
        Kind kind;
        QWidget* widget;
    };

    struct Choice
    {
        QString label;
        QString value;
    };

    // Building the form.
    QWidget* buildFields();
    QGroupBox* buildModelGroup();
    QGroupBox* buildHypernetworkGroup();
    QWidget* buildCreateFields();
    QGroupBox* buildDatasetGroup();
    QGroupBox* buildTrainingGroup();
    QWidget* buildOptimizerFields();
    QWidget* buildScheduleFields();
    QGroupBox* buildPreviewGroup();
    QGroupBox* buildOutputGroup();

    QLineEdit* addText(QFormLayout* form, const QString& path, const QString& label,
                       const QString& tip);
    QLineEdit* addNumber(QFormLayout* form, const QString& path, const QString& label,
                         const QString& tip);
    QLineEdit* addWhole(QFormLayout* form, const QString& path, const QString& label,
                        const QString& tip);
    QSpinBox* addCount(QFormLayout* form, const QString& path, const QString& label, int minimum,
                       int maximum, const QString& tip);
    QCheckBox* addFlag(QFormLayout* form, const QString& path, const QString& label,
                       const QString& tip);
    QComboBox* addChoice(QFormLayout* form, const QString& path, const QString& label,
                         const std::vector<Choice>& choices, const QString& tip);
    QLineEdit* addPath(QFormLayout* form, const QString& path, const QString& label,
                       const QString& tip, bool folder, const QString& filter);
    void registerField(const QString& path, Kind kind, QWidget* widget, const QString& tip);
    void browse(QLineEdit* edit, bool folder, const QString& filter);

    // Between the widgets and the run file's JSON.
    QJsonObject fieldsJson(QString& problem, QString& problemField) const;
    QJsonValue fieldValue(const Field& field, QString& problem) const;
    void setFieldValue(const Field& field, const QJsonValue& value);
    std::optional<LrScheduleSpec> scheduleOf(const QJsonObject& json) const;

    // Reacting to edits.
    void onFieldChanged(const QString& path);
    void refresh();
    void showProblem(const QString& field, const QString& message);
    void updateModeWidgets();
    void updateOptimizerWidgets();
    void updateScheduleWidgets();
    void onOptimizerChanged();

    // Background jobs; each result is dropped when a newer request was made meanwhile.
    void describeModel();
    void describeHypernetworkFile();
    void scanDataset();
    void showDataset(const DatasetPreview& preview, const std::vector<QImage>& thumbnails);

    std::vector<Field> m_fields;
    bool m_loading = false;

    QWidget* m_fieldsWidget = nullptr;
    QRadioButton* m_newHypernetwork = nullptr;
    QRadioButton* m_fileHypernetwork = nullptr;
    QWidget* m_createFields = nullptr;
    QWidget* m_fileRow = nullptr;
    QLabel* m_modelInfo = nullptr;
    QLabel* m_fileInfo = nullptr;
    QListWidget* m_thumbnails = nullptr;
    QLabel* m_datasetInfo = nullptr;
    QLabel* m_derived = nullptr;
    QLabel* m_problem = nullptr;
    QWidget* m_problemWidget = nullptr;
    QFormLayout* m_hypernetworkForm = nullptr;
    QFormLayout* m_optimizerForm = nullptr;
    QFormLayout* m_scheduleForm = nullptr;
    QString m_previousOptimizer;

    QTimer m_refreshTimer;
    QTimer m_datasetTimer;
    QTimer m_modelTimer;
    QTimer m_fileTimer;

    quint64 m_datasetRequest = 0;
    quint64 m_modelRequest = 0;
    quint64 m_fileRequest = 0;
    int m_datasetImages = -1;
    QStringList m_captions;
    QStringList m_prompts;
    int64_t m_continuedStep = 0;
};

} // namespace studio::ui
