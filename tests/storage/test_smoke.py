def test_chat_roundtrip(alice):
    api = alice["api"]
    r = api.post("/api/storage/chat", {"title": "Hello"})
    assert r.status_code == 201, r.content
    chat = r.json()
    r = api.post(
        "/api/storage/message", {"chatId": chat["id"], "role": "user", "parts": [{"type": "text", "text": "hi"}]}
    )
    assert r.status_code == 201, r.content
    r = api.get("/api/storage/message", {"chatId": chat["id"]})
    assert r.status_code == 200, r.content
    assert [m["content"] for m in r.json()["messages"]] == ["hi"]
    r = api.get("/api/storage/chat")
    assert r.json()["chats"][0]["lastMessageAt"]
