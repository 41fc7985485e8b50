/** Notification channels by type: the one place that lists them (see channel.ts for the interface). */
import type { ChannelType } from '../../catalog/schema.js';
import type { Channel } from './channel.js';
import { slack } from './slack.js';
import { discord } from './discord.js';
import { telegram } from './telegram.js';
import { ntfy } from './ntfy.js';
import { email } from './email.js';

export const CHANNELS: Record<ChannelType, Channel> = { slack, discord, telegram, ntfy, email };
export const CHANNEL_TYPES = Object.keys(CHANNELS) as ChannelType[];
