#pragma once

// Runs: finished run folders reopened with their plots and previews.

#include <QWidget>

namespace studio::ui {

class RunsPage : public QWidget
{
    Q_OBJECT

public:
    explicit RunsPage(QWidget* parent = nullptr);
};

} // namespace studio::ui
