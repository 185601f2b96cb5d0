-- ai-chatbot (vercel/ai-chatbot, Drizzle, Postgres) schema as its migrations 0000-0007 leave it:
-- quoted PascalCase tables, camelCase columns, no ON DELETE CASCADE, Document keyed by
-- (id, createdAt) with its kind in a column literally named "text", Chat.lastContext present
-- (0007; dropped again by 0008). The tests create it in a schema of their own: SCHEMA is
-- replaced by that schema's name.
CREATE TABLE "SCHEMA"."User" (
    "id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
    "email" varchar(64) NOT NULL,
    "password" varchar(64)
);
CREATE TABLE "SCHEMA"."Chat" (
    "id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
    "createdAt" timestamp NOT NULL,
    "userId" uuid NOT NULL,
    "title" text NOT NULL,
    "visibility" varchar DEFAULT 'private' NOT NULL,
    "lastContext" jsonb,
    CONSTRAINT "Chat_userId_User_id_fk" FOREIGN KEY ("userId") REFERENCES "SCHEMA"."User"("id")
        ON DELETE no action ON UPDATE no action
);
CREATE TABLE "SCHEMA"."Message" (
    "id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
    "chatId" uuid NOT NULL,
    "role" varchar NOT NULL,
    "content" json NOT NULL,
    "createdAt" timestamp NOT NULL,
    CONSTRAINT "Message_chatId_Chat_id_fk" FOREIGN KEY ("chatId") REFERENCES "SCHEMA"."Chat"("id")
        ON DELETE no action ON UPDATE no action
);
CREATE TABLE "SCHEMA"."Vote" (
    "chatId" uuid NOT NULL,
    "messageId" uuid NOT NULL,
    "isUpvoted" boolean NOT NULL,
    CONSTRAINT "Vote_chatId_messageId_pk" PRIMARY KEY ("chatId", "messageId"),
    CONSTRAINT "Vote_chatId_Chat_id_fk" FOREIGN KEY ("chatId") REFERENCES "SCHEMA"."Chat"("id")
        ON DELETE no action ON UPDATE no action,
    CONSTRAINT "Vote_messageId_Message_id_fk" FOREIGN KEY ("messageId") REFERENCES "SCHEMA"."Message"("id")
        ON DELETE no action ON UPDATE no action
);
CREATE TABLE "SCHEMA"."Message_v2" (
    "id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
    "chatId" uuid NOT NULL,
    "role" varchar NOT NULL,
    "parts" json NOT NULL,
    "attachments" json NOT NULL,
    "createdAt" timestamp NOT NULL,
    CONSTRAINT "Message_v2_chatId_Chat_id_fk" FOREIGN KEY ("chatId") REFERENCES "SCHEMA"."Chat"("id")
        ON DELETE no action ON UPDATE no action
);
CREATE TABLE "SCHEMA"."Vote_v2" (
    "chatId" uuid NOT NULL,
    "messageId" uuid NOT NULL,
    "isUpvoted" boolean NOT NULL,
    CONSTRAINT "Vote_v2_chatId_messageId_pk" PRIMARY KEY ("chatId", "messageId"),
    CONSTRAINT "Vote_v2_chatId_Chat_id_fk" FOREIGN KEY ("chatId") REFERENCES "SCHEMA"."Chat"("id")
        ON DELETE no action ON UPDATE no action,
    CONSTRAINT "Vote_v2_messageId_Message_v2_id_fk" FOREIGN KEY ("messageId") REFERENCES "SCHEMA"."Message_v2"("id")
        ON DELETE no action ON UPDATE no action
);
CREATE TABLE "SCHEMA"."Document" (
    "id" uuid DEFAULT gen_random_uuid() NOT NULL,
    "createdAt" timestamp NOT NULL,
    "title" text NOT NULL,
    "content" text,
    "text" varchar DEFAULT 'text' NOT NULL,
    "userId" uuid NOT NULL,
    CONSTRAINT "Document_id_createdAt_pk" PRIMARY KEY ("id", "createdAt"),
    CONSTRAINT "Document_userId_User_id_fk" FOREIGN KEY ("userId") REFERENCES "SCHEMA"."User"("id")
        ON DELETE no action ON UPDATE no action
);
CREATE TABLE "SCHEMA"."Suggestion" (
    "id" uuid DEFAULT gen_random_uuid() NOT NULL,
    "documentId" uuid NOT NULL,
    "documentCreatedAt" timestamp NOT NULL,
    "originalText" text NOT NULL,
    "suggestedText" text NOT NULL,
    "description" text,
    "isResolved" boolean DEFAULT false NOT NULL,
    "userId" uuid NOT NULL,
    "createdAt" timestamp NOT NULL,
    CONSTRAINT "Suggestion_id_pk" PRIMARY KEY ("id"),
    CONSTRAINT "Suggestion_userId_User_id_fk" FOREIGN KEY ("userId") REFERENCES "SCHEMA"."User"("id")
        ON DELETE no action ON UPDATE no action,
    CONSTRAINT "Suggestion_documentId_documentCreatedAt_Document_id_createdAt_fk"
        FOREIGN KEY ("documentId", "documentCreatedAt") REFERENCES "SCHEMA"."Document"("id", "createdAt")
        ON DELETE no action ON UPDATE no action
);
CREATE TABLE "SCHEMA"."Stream" (
    "id" uuid DEFAULT gen_random_uuid() NOT NULL,
    "chatId" uuid NOT NULL,
    "createdAt" timestamp NOT NULL,
    CONSTRAINT "Stream_id_pk" PRIMARY KEY ("id"),
    CONSTRAINT "Stream_chatId_Chat_id_fk" FOREIGN KEY ("chatId") REFERENCES "SCHEMA"."Chat"("id")
        ON DELETE no action ON UPDATE no action
);
