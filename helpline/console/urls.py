from django.urls import path

from helpline.console import supervisor, views

app_name = "console"

urlpatterns = [
    path("", views.my_queue, name="queue"),
    path("queue/live/", views.my_queue_live, name="queue-live"),
    path("queue/take-next/", views.take_next, name="take-next"),
    path("login/", views.login_page, name="login"),
    path("logout/", views.logout_page, name="logout"),
    path("still-here/", views.still_here, name="still-here"),
    path("cases/<int:pk>/", views.case_page, name="case"),
    path("cases/<int:pk>/conversation/", views.conversation_live, name="conversation-live"),
    path("cases/<int:pk>/voicemail/<int:message_id>/", views.voicemail, name="voicemail"),
    path("cases/<int:pk>/<slug:action>/", views.case_action, name="case-action"),
    path("search/", views.search, name="search"),
    path("board/", supervisor.board, name="board"),
    path("board/live/", supervisor.board_live, name="board-live"),
    path("roster/", supervisor.roster, name="roster"),
    path("roster/shifts/", supervisor.shift_add, name="shift-add"),
    path("roster/shifts/<int:pk>/", supervisor.shift_edit, name="shift-edit"),
    path("roster/shifts/<int:pk>/delete/", supervisor.shift_delete, name="shift-delete"),
]
