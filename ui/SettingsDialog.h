#pragma once

// The settings form (studio.md section 6): device, precision, CPU threads, tokenizer path and
// output folder. OK saves them and applies the CPU thread count at once; an inconsistent choice
// (fp16 on the cpu) is shown in red and OK stays disabled until it is fixed.

#include "ui/Settings.h"

#include <QDialog>

class QComboBox;
class QDialogButtonBox;
class QLabel;
class QLineEdit;
class QSpinBox;

namespace studio::ui {

class SettingsDialog : public QDialog
{
    Q_OBJECT

public:
    explicit SettingsDialog(const Settings& settings, QWidget* parent = nullptr);

    // The values the form holds now.
    Settings settings() const;

    // Saves (Settings::save) and applies (applyEngineSettings) before closing.
    void accept() override;

private:
    void setupUi();
    void setValues(const Settings& settings);
    void refresh();
    void browseTokenizer();
    void browseOutputFolder();

    QComboBox* m_deviceCombo = nullptr;
    QLabel* m_deviceNote = nullptr;
    QComboBox* m_precisionCombo = nullptr;
    QSpinBox* m_threadsSpin = nullptr;
    QLineEdit* m_tokenizerEdit = nullptr;
    QLineEdit* m_outputFolderEdit = nullptr;
    QLabel* m_problemLabel = nullptr;
    QDialogButtonBox* m_buttons = nullptr;
};

} // namespace studio::ui
