#include "ui/RunsPage.h"

#include <QLabel>
#include <QVBoxLayout>

namespace studio::ui {

RunsPage::RunsPage(QWidget* parent) : QWidget(parent)
{
    auto* layout = new QVBoxLayout(this);
    layout->addWidget(new QLabel(QStringLiteral("RunsPage"), this));
}

} // namespace studio::ui
